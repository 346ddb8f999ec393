fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Copy,
        bdbtools::copy::parse,
        bdbtools::copy::run,
    )
}
