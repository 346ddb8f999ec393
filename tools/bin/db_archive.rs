fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Archive,
        bdbtools::archive::parse,
        bdbtools::archive::run,
    )
}
