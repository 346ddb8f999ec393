use bdbtools::checkpoint;
use bdbtools::cli::{self, Tool};

fn main() {
    cli::run_main(Tool::Checkpoint, checkpoint::parse, checkpoint::run)
}
