//! Draws the [`App`] with ratatui: the scrollback on top, then the status line, then the
//! input line.

use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar as _, UnicodeWidthStr as _};

use crate::app::{App, Link};
use crate::scrollback::Kind;

const PROMPT: &str = "> ";

/// Draws the whole screen and returns how many scrollback entries it showed, which is how
/// far a page up or down should move.
pub fn draw(frame: &mut Frame<'_>, app: &App) -> usize {
    let [log, status, input] = Layout::vertical([
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let shown = draw_scrollback(frame, log, app);
    frame.render_widget(Paragraph::new(status_line(app)).style(STATUS), status);
    draw_input(frame, input, app);
    shown
}

fn style(kind: Kind) -> Style {
    let style = Style::new();
    match kind {
        Kind::Error => style.fg(Color::Red),
        Kind::Info => style.fg(Color::DarkGray),
        Kind::Room | Kind::Other => style,
        Kind::Action => style.add_modifier(Modifier::ITALIC),
        Kind::Notice => style.fg(Color::Yellow),
        Kind::Direct => style.fg(Color::Magenta),
        Kind::Own => style.fg(Color::Green),
        Kind::Client => style.fg(Color::Yellow).add_modifier(Modifier::ITALIC),
    }
}

/// Fills the area from the bottom up with the newest visible entries, each wrapped to
/// the width by hand so that scrolling counts whole entries. Returns how many entries
/// are at least partly on screen.
fn draw_scrollback(frame: &mut Frame<'_>, area: Rect, app: &App) -> usize {
    let rows = usize::from(area.height);
    let width = usize::from(area.width).max(1);
    let mut lines: Vec<Line<'_>> = Vec::with_capacity(rows);
    let mut shown = 0;
    for entry in app.scrollback.visible() {
        if lines.len() >= rows {
            break;
        }
        shown += 1;
        let style = style(entry.kind);
        // Rows of this entry are pushed last first, as the whole list is reversed below.
        for row in wrap(&entry.text, width).into_iter().rev() {
            lines.push(Line::styled(row, style));
            if lines.len() >= rows {
                break;
            }
        }
    }
    lines.reverse();
    let top_padding = rows - lines.len();
    let area = Rect {
        y: area.y + top_padding as u16,
        height: lines.len() as u16,
        ..area
    };
    frame.render_widget(Paragraph::new(lines), area);
    shown
}

/// Splits `text` into rows at most `width` cells wide, breaking anywhere.
fn wrap(text: &str, width: usize) -> Vec<&str> {
    let mut rows = Vec::new();
    let mut start = 0;
    let mut used = 0;
    for (i, c) in text.char_indices() {
        let w = c.width().unwrap_or(0);
        if used + w > width && i > start {
            rows.push(&text[start..i]);
            start = i;
            used = 0;
        }
        used += w;
    }
    rows.push(&text[start..]);
    rows
}

const STATUS: Style = Style::new().fg(Color::White).bg(Color::DarkGray);

/// `confab · NAME · room ROOM · connected to HOST:PORT`, led by how far the view is
/// scrolled up, which is the first thing to see when new lines seem not to arrive.
fn status_line(app: &App) -> Line<'_> {
    let mut spans = Vec::new();
    let offset = app.scrollback.offset();
    if offset > 0 {
        spans.push(Span::styled(
            format!(" ↑{offset} PgDn ·"),
            Style::new().fg(Color::Yellow),
        ));
    }
    spans.push(Span::raw(" confab · "));
    spans.push(Span::raw(app.name()));
    if !app.is_registered() {
        spans.push(Span::raw(" (not registered)"));
    }
    spans.push(Span::raw(match app.room() {
        Some(room) => format!(" · room {room} · "),
        None => " · no room · ".to_string(),
    }));
    match app.link() {
        Link::Connected if app.is_quitting() => spans.push(Span::raw("leaving")),
        Link::Connected => spans.push(Span::raw(format!("connected to {}", app.addr()))),
        Link::Lost(_) => spans.push(Span::styled(
            "disconnected",
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        )),
    }
    Line::from(spans)
}

/// Draws the prompt and as much of the input as fits, sliding it sideways so that the
/// cursor stays on screen.
fn draw_input(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let room = usize::from(area.width)
        .saturating_sub(PROMPT.width())
        .saturating_sub(1);
    let before = app.input.before_cursor();
    let mut start = 0;
    let mut cursor = before.width();
    for c in before.chars() {
        if cursor <= room {
            break;
        }
        cursor -= c.width().unwrap_or(0);
        start += c.len_utf8();
    }
    let shown = &app.input.text()[start..];
    let prompt_style = if app.is_connected() {
        Style::new().fg(Color::Cyan)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    let line = Line::from(vec![Span::styled(PROMPT, prompt_style), Span::raw(shown)]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (PROMPT.width() + cursor).min(usize::from(area.width)) as u16;
    frame.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn render(app: &App, width: u16, height: u16) -> (Vec<String>, Terminal<TestBackend>) {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
        terminal
            .draw(|frame| {
                draw(frame, app);
            })
            .expect("draw");
        let buffer = terminal.backend().buffer();
        let rows = (0..height)
            .map(|y| {
                let row: String = (0..width).map(|x| buffer[(x, y)].symbol()).collect();
                row.trim_end().to_string()
            })
            .collect();
        (rows, terminal)
    }

    fn app() -> App {
        let mut app = App::new("127.0.0.1:7878", "alice");
        for line in [
            "* Your user detail saved as : alice",
            "* Now talking in lobby",
            "[lobby] bob: hi alice",
            "[dm] bob: psst",
        ] {
            app.on_server_line(line);
        }
        app
    }

    #[test]
    fn shows_the_newest_lines_the_status_and_the_input() {
        let mut app = app();
        "hey".chars().for_each(|c| app.input.insert(c));
        let (rows, mut terminal) = render(&app, 60, 6);
        assert_eq!(rows.len(), 6);
        assert_eq!(
            rows,
            [
                "* Your user detail saved as : alice",
                "* Now talking in lobby",
                "[lobby] bob: hi alice",
                "[dm] bob: psst",
                " confab · alice · room lobby · connected to 127.0.0.1:7878",
                "> hey",
            ]
        );
        let buffer = terminal.backend().buffer();
        assert_eq!(
            buffer[(0, 3)].fg,
            Color::Magenta,
            "direct messages stand out"
        );
        assert_eq!(buffer[(0, 2)].fg, Color::Reset);
        terminal
            .backend_mut()
            .assert_cursor_position(Position::new(5, 5));
    }

    #[test]
    fn shows_a_lost_connection_in_red() {
        let mut app = app();
        app.on_lost("connection reset");
        let (rows, terminal) = render(&app, 80, 4);
        assert_eq!(
            rows[1],
            "Connection lost: connection reset. Press any key to exit."
        );
        assert_eq!(rows[2], " confab · alice · room lobby · disconnected");
        let x = rows[2].chars().position(|c| c == 'd').expect("shown") as u16;
        assert_eq!(terminal.backend().buffer()[(x, 2)].fg, Color::LightRed);
    }

    #[test]
    fn wraps_long_lines_and_scrolls_by_entries() {
        let mut app = app();
        app.on_server_line("[lobby] bob: 0123456789abcdefghij");
        let (rows, _) = render(&app, 20, 5);
        assert_eq!(
            &rows[..3],
            ["[dm] bob: psst", "[lobby] bob: 0123456", "789abcdefghij"]
        );
        let mut terminal = Terminal::new(TestBackend::new(20, 5)).expect("test terminal");
        let mut shown = 0;
        terminal
            .draw(|frame| shown = draw(frame, &app))
            .expect("draw");
        assert_eq!(shown, 2, "the dm and the two-row message fill three rows");
        app.scrollback.scroll_up(1);
        let (rows, _) = render(&app, 20, 5);
        assert_eq!(&rows[..3], ["[lobby] bob: hi alic", "e", "[dm] bob: psst"]);
        assert_eq!(rows[3], " ↑1 PgDn · confab ·");
    }

    #[test]
    fn long_input_slides_to_keep_the_cursor_visible() {
        let mut app = app();
        "abcdefghijklmnopqrstuvwxyz"
            .chars()
            .for_each(|c| app.input.insert(c));
        let (rows, mut terminal) = render(&app, 12, 3);
        assert_eq!(rows[2], "> rstuvwxyz");
        terminal
            .backend_mut()
            .assert_cursor_position(Position::new(11, 2));
        app.input.home();
        let (rows, mut terminal) = render(&app, 12, 3);
        assert_eq!(rows[2], "> abcdefghij");
        terminal
            .backend_mut()
            .assert_cursor_position(Position::new(2, 2));

        app.input.clear();
        "日本語日本語".chars().for_each(|c| app.input.insert(c));
        let (rows, mut terminal) = render(&app, 10, 3);
        assert_eq!(
            rows[2].replace(' ', ""),
            ">日本語",
            "wide characters count twice"
        );
        terminal
            .backend_mut()
            .assert_cursor_position(Position::new(8, 2));
    }

    #[test]
    fn wrap_breaks_at_the_width_and_respects_wide_characters() {
        assert_eq!(wrap("abcdef", 3), ["abc", "def"]);
        assert_eq!(wrap("", 3), [""]);
        assert_eq!(wrap("日本語", 4), ["日本", "語"]);
        assert_eq!(
            wrap("日", 1),
            ["日"],
            "a character wider than a row still shows"
        );
    }
}
