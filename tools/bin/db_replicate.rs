fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Replicate,
        bdbtools::replicate::parse,
        bdbtools::replicate::run,
    )
}
