//! `tachyon [EAL args] -- [options]`: see `tachyon --help`.

use clap::Parser;
use tachyon::{cli, startup};

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let split = cli::split_args(&argv);
    let options = match cli::Options::try_parse_from(&split.app) {
        Ok(o) => o,
        Err(e) => {
            let is_help =
                matches!(e.kind(), clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion);
            let _ = e.print();
            if !is_help && !split.had_separator {
                eprintln!("note: EAL arguments go before `--`: tachyon [EAL args] -- [options]");
            }
            std::process::exit(if is_help { 0 } else { 2 });
        }
    };
    let result = if options.plan {
        startup::print_plan(&options, &split.eal)
    } else {
        startup::prepare(options, split.eal).and_then(startup::run)
    };
    if let Err(e) = result {
        tachyon::log_err!("tachyon: error: {e}");
        tachyon::control::log::flush();
        std::process::exit(1);
    }
    tachyon::control::log::flush();
}
