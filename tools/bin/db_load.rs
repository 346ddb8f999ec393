fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Load,
        bdbtools::load::parse,
        bdbtools::load::run,
    )
}
