//! `rkstack exec`: a process in a running container, over the API; with
//! a terminal, the session is raw on a terminal of the container's own,
//! which follows the window's size.

use std::io::{Read, Write};
use std::process::ExitCode;

use rkstack::api::client::{Client, ClientError, Lines};

use super::EXIT_FAILED;

/// The terminal in raw mode while it lives (restored on drop).
struct Raw(Option<nix::sys::termios::Termios>);

impl Raw {
    fn enter() -> Raw {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(&stdin) else {
            return Raw(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        Raw(Some(saved))
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// The size of the terminal on stdout: (rows, cols).
fn window() -> (u16, u16) {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills the winsize it is given.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    if r == 0 && ws.ws_row > 0 {
        (ws.ws_row, ws.ws_col)
    } else {
        (24, 80)
    }
}

pub fn exec(client: &Client, name: &str, command: &[String]) -> Result<ExitCode, ClientError> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        // Interactive: a terminal in the container, this one in raw mode.
        let (rows, cols) = window();
        // A terminal program needs to know the terminal: yours, as docker
        // and podman pass it on with -t.
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm".into());
        let body = serde_json::json!({
            "command": command,
            "rows": rows,
            "cols": cols,
            "env": [format!("TERM={term}")],
        });
        let raw = Raw::enter();
        let code = client.exec_tty(name, body, window);
        drop(raw);
        return code.map(|c| ExitCode::from(u8::try_from(c).unwrap_or(EXIT_FAILED)));
    }
    // Input from a pipe or file goes to the process.
    let stdin = if std::io::stdin().is_terminal() {
        None
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s)
    };
    let body = serde_json::json!({ "command": command, "stdin": stdin });
    let mut lines = Lines::default();
    let mut code = None;
    client.stream(
        "POST",
        &format!("/v1/containers/{name}/exec"),
        Some(body),
        &mut |chunk| {
            for line in lines.feed(chunk) {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                if let Some(c) = v["exit"].as_i64() {
                    code = Some(c);
                    continue;
                }
                let data = v["data"].as_str().unwrap_or_default();
                let _ = if v["stream"] == "stderr" {
                    std::io::stderr().write_all(data.as_bytes())
                } else {
                    let mut o = std::io::stdout();
                    o.write_all(data.as_bytes()).and_then(|_| o.flush())
                };
            }
            true
        },
    )?;
    Ok(match code {
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(EXIT_FAILED)),
        None => {
            eprintln!("rkstack: the process's exit status did not arrive");
            ExitCode::from(EXIT_FAILED)
        }
    })
}
