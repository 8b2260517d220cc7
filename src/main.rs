//! The `edgetune` command line. Flags are parsed into raw `clap` structs in [`cli`], validated into
//! library options there, and only then is any work started.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
