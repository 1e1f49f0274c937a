//! The full-screen terminal front-end: what arrives shows while you type, the status line
//! tells whether the friend is online, and each message you send gets a mark: `…` while
//! unacknowledged, `✓` once delivered, `→` when sent with no receipt possible (plain
//! text, TCP).
//!
//! The transport runs as its own task and talks to this loop over the same channels as
//! the pipe front-end; the model is in `app`, with no I/O.

mod app;

use std::collections::VecDeque;

use anyhow::Context as _;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt as _;
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::{DefaultTerminal, Frame};
use tokio::sync::mpsc;
use unicode_width::UnicodeWidthChar as _;

use self::app::{Action, App, Entry};
use crate::chat::{self, Input, Mark, Presence, Show, SHOW_QUEUE, USER_QUEUE};
use crate::{Link, PeerArgs, Report};

/// Lines typed but not yet taken by the transport (it takes none while its queue is
/// full); beyond this, Enter is refused with a notice.
const MAX_OUTBOX: usize = 64;

/// The terminal in raw mode on the alternate screen, restored when dropped. ratatui's
/// panic hook restores it on a panic too.
struct Tty {
    terminal: DefaultTerminal,
}

impl Tty {
    fn enter() -> std::io::Result<Tty> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Tty { terminal }),
            Err(e) => {
                // Raw mode may be on even though the alternate screen failed.
                ratatui::restore();
                Err(e)
            }
        }
    }
}

impl Drop for Tty {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub(crate) async fn run(args: PeerArgs, link: Link) -> anyhow::Result<Report> {
    let (user_tx, user_rx) = mpsc::channel(USER_QUEUE);
    let (show_tx, mut show_rx) = mpsc::channel(SHOW_QUEUE);
    let mut transport = tokio::spawn(chat::drive(args, link, user_rx, show_tx));
    let mut tty = match Tty::enter() {
        Ok(tty) => tty,
        Err(e) => {
            transport.abort();
            return Err(e).context("setting up the terminal");
        }
    };
    let mut app = App::default();
    let mut keys = EventStream::new();
    let mut keys_open = true;
    let mut outbox: VecDeque<Input> = VecDeque::new();
    let ended = loop {
        tty.terminal
            .draw(|frame| draw(frame, &app))
            .context("drawing the terminal")?;
        tokio::select! {
            done = &mut transport => break done,
            Some(show) = show_rx.recv() => {
                app.apply(show);
                // A burst is drawn once.
                while let Ok(show) = show_rx.try_recv() {
                    app.apply(show);
                }
            }
            permit = user_tx.reserve(), if !outbox.is_empty() => {
                if let (Ok(permit), Some(input)) = (permit, outbox.pop_front()) {
                    permit.send(input);
                }
            }
            event = keys.next(), if keys_open => match event {
                Some(Ok(TermEvent::Key(key))) => match app.key(key) {
                    Some(Action::Send(line)) if outbox.len() < MAX_OUTBOX => {
                        outbox.push_back(Input::Line(line));
                    }
                    Some(Action::Send(_)) => app.apply(Show::Notice(
                        "still sending earlier lines; that one was not sent".into(),
                    )),
                    Some(Action::Leave) => outbox.push_back(Input::Leave),
                    Some(Action::QuitNow) => {
                        transport.abort();
                        break transport.await;
                    }
                    None => {}
                },
                // Resizes and the like only need the redraw at the top of the loop.
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    keys_open = false;
                    outbox.push_back(Input::Leave);
                }
            },
        }
    };
    while let Ok(show) = show_rx.try_recv() {
        app.apply(show);
    }
    drop(tty);
    // The chat screen is gone; say how it ended where the user can still read it.
    for notice in app.last_notices(3) {
        eprintln!("confab peer: {notice}");
    }
    match ended {
        Ok(result) => result,
        Err(e) if e.is_cancelled() => {
            anyhow::bail!("quit without waiting for the friend to acknowledge everything")
        }
        Err(e) => Err(e).context("the chat failed"),
    }
}

fn draw(frame: &mut Frame<'_>, app: &App) {
    let [top, middle, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(status_line(app)), top);
    draw_conversation(frame, app, middle);
    draw_input(frame, app, bottom);
}

fn status_line(app: &App) -> Line<'static> {
    let title = Span::styled(
        " confab peer ",
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
    );
    let Some(status) = &app.status else {
        return Line::from(vec![title, Span::raw(" starting…")]);
    };
    let (dot, presence) = match status.presence {
        Presence::Online => (Span::styled(" ● ", Style::new().fg(Color::Green)), "online"),
        Presence::Offline => (Span::styled(" ● ", Style::new().fg(Color::Red)), "offline"),
        Presence::Unknown => (
            Span::styled(" ○ ", Style::new().fg(Color::DarkGray)),
            "presence unknown",
        ),
    };
    let mut spans = vec![
        title,
        Span::raw(format!(
            " {} · {} · friend {}",
            status.transport, status.mode, status.friend
        )),
        dot,
        Span::raw(presence),
    ];
    let [strangers, forged, malformed] = status.dropped;
    if strangers + forged + malformed > 0 {
        spans.push(Span::styled(
            format!(
                " · dropped: {strangers} from strangers, {forged} forged, {malformed} malformed"
            ),
            Style::new().fg(Color::Yellow),
        ));
    }
    Line::from(spans)
}

/// The styled pieces of one entry, before wrapping.
fn entry_segments(entry: &Entry) -> Vec<(String, Style)> {
    match entry {
        Entry::Friend(text) => vec![
            (
                "friend ".into(),
                Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
            ),
            (text.clone(), Style::new()),
        ],
        Entry::Mine { text, mark, .. } => {
            let (sign, style) = match mark {
                None => (" …", Style::new().fg(Color::DarkGray)),
                Some(Mark::Delivered) => (" ✓", Style::new().fg(Color::Green)),
                Some(Mark::Sent) => (" →", Style::new().fg(Color::DarkGray)),
            };
            vec![
                (
                    "you    ".into(),
                    Style::new().fg(Color::Magenta).add_modifier(Modifier::BOLD),
                ),
                (text.clone(), Style::new()),
                (sign.into(), style),
            ]
        }
        Entry::Notice(text) => vec![(
            format!("  · {text}"),
            Style::new()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::ITALIC),
        )],
    }
}

/// Cuts an entry into rows of at most `width` columns, keeping each piece's style.
fn wrap(segments: Vec<(String, Style)>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(1);
    let mut rows = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    for (text, style) in segments {
        let mut piece = String::new();
        for c in text.chars() {
            let w = c.width().unwrap_or(0);
            if used + w > width && used > 0 {
                row.push(Span::styled(std::mem::take(&mut piece), style));
                rows.push(Line::from(std::mem::take(&mut row)));
                used = 0;
            }
            piece.push(c);
            used += w;
        }
        if !piece.is_empty() {
            row.push(Span::styled(piece, style));
        }
    }
    rows.push(Line::from(row));
    rows
}

fn draw_conversation(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let height = usize::from(area.height);
    let wanted = height + app.scroll;
    // Newest first, only as many rows as can be on screen.
    let mut rows: Vec<Line<'static>> = Vec::new();
    for entry in app.entries.iter().rev() {
        let mut wrapped = wrap(entry_segments(entry), usize::from(area.width));
        wrapped.reverse();
        rows.extend(wrapped);
        if rows.len() >= wanted {
            break;
        }
    }
    let skip = app.scroll.min(rows.len().saturating_sub(height));
    let mut visible: Vec<Line<'static>> = rows.into_iter().skip(skip).take(height).collect();
    visible.reverse();
    // Fewer rows than the area: the conversation sits at the bottom, next to the input.
    let blank = height.saturating_sub(visible.len());
    let mut lines = vec![Line::default(); blank];
    lines.extend(visible);
    frame.render_widget(Paragraph::new(lines), area);
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    const PROMPT: &str = "> ";
    let room = usize::from(area.width)
        .saturating_sub(PROMPT.len() + 1)
        .max(1);
    let widths: Vec<usize> = app.input.chars().map(|c| c.width().unwrap_or(0)).collect();
    let cursor_col: usize = widths[..app.cursor.min(widths.len())].iter().sum();
    // Scroll the line sideways so that the cursor stays in view.
    let mut skip_cols = cursor_col.saturating_sub(room);
    let mut shown = String::new();
    let mut col = 0;
    for (c, w) in app.input.chars().zip(&widths) {
        if skip_cols > 0 {
            skip_cols = skip_cols.saturating_sub(*w);
            col += w;
            continue;
        }
        shown.push(c);
    }
    let offset = col;
    let prompt_style = if app.leaving {
        Style::new().fg(Color::DarkGray)
    } else {
        Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
    };
    let line = Line::from(vec![Span::styled(PROMPT, prompt_style), Span::raw(shown)]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (PROMPT.len() + cursor_col - offset).min(usize::from(area.width)) as u16;
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use crate::chat::Status;

    fn screen(app: &App, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|frame| draw(frame, app)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_owned())
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_screen_shows_status_conversation_marks_and_input() {
        let mut app = App::default();
        app.apply(Show::Status(Status {
            transport: "udp",
            mode: "reliable",
            friend: "127.0.0.1:5001".into(),
            presence: Presence::Online,
            dropped: [0, 2, 0],
        }));
        app.apply(Show::Incoming("hi there".into()));
        app.apply(Show::Outgoing {
            id: Some(0),
            text: "hello".into(),
        });
        app.apply(Show::Outgoing {
            id: Some(1),
            text: "still going".into(),
        });
        app.apply(Show::Mark(0, Mark::Delivered));
        app.apply(Show::Notice("the friend is online".into()));
        app.input = "typing".into();
        app.cursor = 6;
        let screen = screen(&app, 100, 8);
        let rows: Vec<&str> = screen.lines().collect();
        assert!(
            rows[0].contains("udp · reliable · friend 127.0.0.1:5001 ● online"),
            "{screen}"
        );
        assert!(rows[0].contains("2 forged"), "{screen}");
        assert_eq!(rows[3], "friend hi there");
        assert_eq!(rows[4], "you    hello ✓");
        assert_eq!(rows[5], "you    still going …");
        assert_eq!(rows[6], "  · the friend is online");
        assert_eq!(rows[7], "> typing");
    }

    #[test]
    fn long_messages_wrap_and_the_newest_stay_in_view() {
        let mut app = App::default();
        for i in 0..50 {
            app.apply(Show::Incoming(format!("message {i} {}", "x".repeat(30))));
        }
        let screen = screen(&app, 20, 6);
        let rows: Vec<&str> = screen.lines().collect();
        assert!(rows.iter().all(|r| r.chars().count() <= 20));
        assert!(screen.contains("message 49"), "{screen}");
    }
}
