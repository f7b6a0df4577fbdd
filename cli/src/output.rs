//! Every line `shardlet` prints goes through these macros, never `println!`/`eprintln!`
//! (`clippy::print_stdout` and `print_stderr` are denied in this crate): those panic when
//! the other end is gone, and someone's end is always gone eventually.
//!
//! - [`out!`] / [`out_text!`]: a command's answer on stdout (`shardlet admin …`). A
//!   reader that went away (`shardlet admin layout show | head -3`) ends the command
//!   quietly with status 0, as ripgrep does; any other write error is ignored too (the
//!   answer is already lost, and the command's work is done).
//! - [`say!`]: what a server or `shardlet dev` announces on stdout ("listening on …").
//!   A failed write is ignored: the process keeps serving.
//! - [`complain!`]: a line on stderr, a failed write ignored (a closed stderr must not
//!   end a process; logging has the same rule, `init_tracing`).

use std::io::Write;

/// A command's answer line; see the module documentation.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::answer(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// A command's answer without an added newline; see [`out!`].
macro_rules! out_text {
    ($($arg:tt)*) => {
        $crate::output::answer(format_args!($($arg)*))
    };
}

/// A server's announcement line on stdout; a failed write is ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// A line on stderr; a failed write is ignored.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {complain, out, out_text, say};

/// Writes a command's answer; a reader that went away ends the command with status 0.
pub fn answer(text: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    let written = stdout.write_fmt(text).and_then(|()| stdout.flush());
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}
