fn main() {
    eprintln!("gradphoto: the command line is being built");
    std::process::exit(2);
}
