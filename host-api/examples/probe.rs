fn main() {
    for p in std::env::args().skip(1) {
        match host_api::load_plugin(std::path::Path::new(&p)) {
            Ok(l) => println!("{p}: loaded {l:?}"),
            Err(e) => println!("{e}\n  details: {}", e.details),
        }
    }
}
