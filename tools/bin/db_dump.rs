fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Dump,
        bdbtools::dump::parse,
        bdbtools::dump::run,
    )
}
