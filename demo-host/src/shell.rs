//! Running a user-given command line through the shell, with arguments appended (quoted) and a
//! time limit. The child's standard output never reaches the host's own standard output (which
//! carries the scripted mode's lines).

use std::{
    io::{self, Read},
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Quotes `arg` for a POSIX shell (or, on Windows, for `cmd.exe`).
///
/// ```
/// assert_eq!(demo_host::shell::quote("a b'c"), r#"'a b'\''c'"#);
/// ```
pub fn quote(arg: &str) -> String {
    if cfg!(windows) {
        format!("\"{}\"", arg.replace('"', "\"\""))
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// `command` with each of `args` appended, quoted.
pub fn command_line(command: &str, args: &[&str]) -> String {
    let mut line = command.to_owned();
    for arg in args {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

fn shell(line: &str) -> Command {
    if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.arg("/C").arg(line);
        c
    } else {
        let mut c = Command::new("sh");
        c.arg("-c").arg(line);
        c
    }
}

/// How a command ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Its standard output (only when captured).
    pub stdout: Vec<u8>,
}

/// Waits for `child` at most `timeout`; kills it when the time runs out.
fn wait_bounded(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("did not finish within {} s", timeout.as_secs_f32()),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `line` through the shell; its standard output goes to the host's standard error.
pub fn run(line: &str, timeout: Duration) -> io::Result<ExitStatus> {
    let mut child = shell(line)
        .stdin(Stdio::null())
        .stdout(Stdio::from(io::stderr()))
        .stderr(Stdio::inherit())
        .spawn()?;
    wait_bounded(&mut child, timeout)
}

/// Runs `line` through the shell and captures its standard output (at most 1 MiB is kept).
pub fn run_capture(line: &str, timeout: Duration) -> io::Result<Finished> {
    let mut child = shell(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut out = child.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = (&mut out).take(1 << 20).read_to_end(&mut buf);
        // Drain the rest so the child never blocks on a full pipe.
        let _ = io::copy(&mut out, &mut io::sink());
        buf
    });
    let status = wait_bounded(&mut child, timeout);
    // The pipe closes when the child (and anything it started that kept the pipe) exits; a
    // grandchild holding it open must not hang us: give the reader a short grace period.
    let deadline = Instant::now() + Duration::from_millis(500);
    while !reader.is_finished() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    let stdout = if reader.is_finished() {
        reader.join().unwrap_or_default()
    } else {
        Vec::new()
    };
    Ok(Finished {
        status: status?,
        stdout,
    })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        let nasty = "it's $HOME `x` \"q\" & ; |";
        let f = run_capture(
            &command_line("printf %s", &[nasty]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(f.status.success());
        assert_eq!(String::from_utf8(f.stdout).unwrap(), nasty);
    }

    #[test]
    fn a_slow_command_is_killed() {
        let start = Instant::now();
        let e = run("sleep 5", Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() < Duration::from_secs(3));
    }
}
