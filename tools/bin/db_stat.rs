use bdbtools::cli::{self, Tool};
use bdbtools::stat;

fn main() {
    cli::run_main(Tool::Stat, stat::parse, stat::run)
}
