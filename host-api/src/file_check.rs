//! A check the dynamic loader does not make: that an ELF file is complete.
//!
//! A truncated copy of a plugin (an interrupted download or copy) still opens: the loader maps
//! the missing part of a loadable segment anyway, and the first access to it kills the whole
//! process with SIGBUS. So every `PT_LOAD` segment must end within the file. Files that are not
//! ELF are left to the loader, which reports them.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

const PT_LOAD: u64 = 1;

/// `Err(reason)` when `path` is an ELF file whose header, program headers or a loadable segment
/// reach past its end.
pub fn check_complete(path: &Path) -> Result<(), String> {
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut ident = [0u8; 64];
    let n = read_up_to(&mut file, &mut ident).map_err(|e| e.to_string())?;
    if n < 16 || &ident[..4] != b"\x7fELF" {
        return Ok(());
    }
    let wide = match ident[4] {
        1 => false,
        2 => true,
        _ => return Err("an ELF file of unknown class".into()),
    };
    let big = match ident[5] {
        1 => false,
        2 => true,
        _ => return Err("an ELF file of unknown byte order".into()),
    };
    let rd = |b: &[u8]| -> u64 {
        let fold = |v: u64, x: &u8| (v << 8) | u64::from(*x);
        if big {
            b.iter().fold(0, fold)
        } else {
            b.iter().rev().fold(0, fold)
        }
    };
    let header_len = if wide { 64 } else { 52 };
    if n < header_len {
        return Err(format!(
            "the file is truncated ({len} bytes, shorter than an ELF header)"
        ));
    }
    let (phoff, phentsize, phnum) = if wide {
        (
            rd(&ident[0x20..0x28]),
            rd(&ident[0x36..0x38]),
            rd(&ident[0x38..0x3a]),
        )
    } else {
        (
            rd(&ident[0x1c..0x20]),
            rd(&ident[0x2a..0x2c]),
            rd(&ident[0x2c..0x2e]),
        )
    };
    let min_entry = if wide { 56 } else { 32 };
    let table_end = phentsize
        .checked_mul(phnum)
        .and_then(|size| phoff.checked_add(size));
    match table_end {
        Some(end) if end <= len && (phnum == 0 || phentsize >= min_entry) => {}
        _ => {
            return Err(format!(
                "the file is truncated or damaged (its program headers lie past its {len} bytes)"
            ));
        }
    }
    let mut table = vec![0u8; (phentsize * phnum) as usize];
    file.seek(SeekFrom::Start(phoff))
        .and_then(|_| file.read_exact(&mut table))
        .map_err(|e| e.to_string())?;
    for ph in table.chunks_exact(phentsize.max(1) as usize) {
        let (p_type, offset, filesz) = if wide {
            (rd(&ph[0..4]), rd(&ph[8..16]), rd(&ph[32..40]))
        } else {
            (rd(&ph[0..4]), rd(&ph[4..8]), rd(&ph[16..20]))
        };
        if p_type == PT_LOAD && offset.checked_add(filesz).is_none_or(|end| end > len) {
            return Err(format!(
                "the file is truncated (a loadable segment ends at byte {}, the file has {len})",
                offset.saturating_add(filesz)
            ));
        }
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("host-api-{}-{name}", std::process::id()));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn complete_elf_passes_truncated_copies_fail() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let whole = scratch("whole", &exe);
        assert_eq!(check_complete(&whole), Ok(()));
        // Cuts inside the loaded part (the debug sections at the end are not loaded).
        for cut in [40, 4096, 64 * 1024] {
            let part = scratch(&format!("cut{cut}"), &exe[..cut]);
            let err = check_complete(&part).unwrap_err();
            assert!(err.contains("truncated"), "{cut}: {err}");
            let _ = std::fs::remove_file(part);
        }
        let _ = std::fs::remove_file(whole);
    }

    #[test]
    fn other_files_are_left_to_the_loader() {
        let p = scratch("text", b"not an ELF file at all");
        assert_eq!(check_complete(&p), Ok(()));
        let _ = std::fs::remove_file(p);
    }
}
