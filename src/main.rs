fn main() {
    p2sbench::store::large_thread_stacks();
    std::process::exit(p2sbench::cli::main());
}
