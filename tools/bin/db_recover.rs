use bdbtools::cli::{self, Tool};
use bdbtools::recover;

fn main() {
    cli::run_main(Tool::Recover, recover::parse, recover::run)
}
