use bdbtools::cli::{self, Tool};
use bdbtools::printlog;

fn main() {
    cli::run_main(Tool::Printlog, printlog::parse, printlog::run)
}
