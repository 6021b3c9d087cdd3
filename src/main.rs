fn main() {
    std::process::exit(p2sbench::cli::main());
}
