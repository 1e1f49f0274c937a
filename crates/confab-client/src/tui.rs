//! The terminal session: raw mode and the alternate screen, the event loop that runs the
//! socket and the keyboard side by side, and restoring the terminal on every way out.

use std::io::{self, Stdout};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::time::Duration;

use crossterm::event::{Event, EventStream};
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen};
use crossterm::{cursor, execute, terminal};
use futures::StreamExt as _;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::net::TcpStream;
use tokio::time::{sleep_until, Instant};

use crate::app::{Action, App};
use crate::conn::{self, Incoming, LineReader, LineWriter};
use crate::ui;

/// How long to wait for the server to close after `/quit` before leaving anyway.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Connects, then runs the full-screen client until the user leaves.
pub async fn run(addr: &str, name: &str) -> anyhow::Result<ExitCode> {
    // Connecting first means a refused connection is a plain error, with no flash of an
    // empty screen.
    let stream = conn::connect(addr).await?;
    let mut screen = Screen::enter()?;
    let ended = session(&mut screen.terminal, stream, addr, name).await;
    drop(screen);
    match ended? {
        Ending::Quit => Ok(ExitCode::SUCCESS),
        Ending::Lost(reason) => {
            eprintln!("confab: connection to {addr} lost: {reason}");
            Ok(ExitCode::FAILURE)
        }
    }
}

enum Ending {
    /// The user left.
    Quit,
    /// The connection ended first, for this reason.
    Lost(String),
}

async fn session(
    terminal: &mut Terminal<CrosstermBackend<Stdout>>,
    stream: TcpStream,
    addr: &str,
    name: &str,
) -> anyhow::Result<Ending> {
    let (read_half, write_half) = stream.into_split();
    let mut reader = LineReader::new(read_half, conn::MAX_SERVER_LINE);
    let mut writer = LineWriter::new(write_half);
    let mut app = App::new(addr, name);
    let mut events = EventStream::new();
    let mut incoming = Vec::new();
    // Set when the socket refuses writes; the read side then reports the loss.
    let mut write_failed = false;
    let mut next_ping = Instant::now() + conn::KEEPALIVE;
    let mut leave_by: Option<Instant> = None;

    writer.queue(&format!("#{name}"));
    loop {
        let mut shown = 0;
        terminal.draw(|frame| shown = ui::draw(frame, &app))?;
        // Paging by one entry less than a screenful keeps one line of context.
        app.page = shown.saturating_sub(1).max(1);
        tokio::select! {
            read = reader.read_into(&mut incoming), if app.is_connected() => {
                for item in incoming.drain(..) {
                    match item {
                        Incoming::Line(line) => app.on_server_line(&line),
                        Incoming::TooLong => app.on_overlong_line(),
                    }
                }
                let reason = match read {
                    Ok(true) => continue,
                    Ok(false) => "the server closed the connection".to_string(),
                    Err(e) => e.to_string(),
                };
                if app.is_quitting() {
                    return Ok(Ending::Quit);
                }
                app.on_lost(&reason);
            }
            written = writer.write_some(), if app.is_connected() && !write_failed && writer.pending() > 0 => {
                write_failed = written.is_err();
            }
            event = events.next() => {
                let key = match event {
                    Some(Ok(Event::Key(key))) => key,
                    // Anything else, a resize say, only needs the redraw at the loop's top.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(anyhow::Error::new(e).context("reading the terminal")),
                    None => return Ok(ending(&app)),
                };
                match app.on_key(key) {
                    Some(Action::SendDm(line)) => {
                        writer.queue(&line);
                        writer.queue("/ping");
                        next_ping = Instant::now() + conn::KEEPALIVE;
                    }
                    Some(Action::Send(line)) => {
                        writer.queue(&line);
                        next_ping = Instant::now() + conn::KEEPALIVE;
                        if app.is_quitting() && leave_by.is_none() {
                            leave_by = Some(Instant::now() + QUIT_GRACE);
                        }
                    }
                    Some(Action::Exit) => return Ok(ending(&app)),
                    None => {}
                }
            }
            () = sleep_until(next_ping), if app.is_connected() && app.is_registered() => {
                writer.queue("/ping");
                app.sent_keepalive();
                next_ping = Instant::now() + conn::KEEPALIVE;
            }
            () = sleep_until(leave_by.unwrap_or(next_ping)), if leave_by.is_some() => {
                return Ok(Ending::Quit);
            }
        }
    }
}

fn ending(app: &App) -> Ending {
    match app.link() {
        crate::app::Link::Lost(reason) if !app.is_quitting() => Ending::Lost(reason.clone()),
        _ => Ending::Quit,
    }
}

/// Whether the terminal is in raw mode on the alternate screen, so that the panic hook
/// knows whether there is anything to restore.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal in full-screen mode; dropping it restores the terminal.
struct Screen {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Screen {
    fn enter() -> io::Result<Screen> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        // From here on a failure still restores the terminal, through `restore` below.
        let terminal = execute!(io::stdout(), EnterAlternateScreen)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match terminal {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen, once, however the UI ends.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Nothing useful can be done if restoring fails; the shell's `reset` remains.
        let _ = disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

/// Restores the terminal before the default hook prints the panic, so that the message
/// lands on the normal screen where it can be read.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
