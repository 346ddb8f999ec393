fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Verify,
        bdbtools::verify::parse,
        bdbtools::verify::run,
    )
}
