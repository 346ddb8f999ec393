fn main() {
    bdbtools::cli::run_main(
        bdbtools::cli::Tool::Hotbackup,
        bdbtools::hotbackup::parse,
        bdbtools::hotbackup::run,
    )
}
