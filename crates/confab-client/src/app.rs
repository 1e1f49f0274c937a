//! The terminal UI's model: what the user sees and types, updated by server lines and
//! key presses, with no I/O so that tests can drive it directly.

use confab_core::MessageKind;
use confab_wire::line::{parse_input, parse_server_line, Input, ServerLine, DEFAULT_MAX_LINE};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::conn::{Pings, Pong};
use crate::input::InputLine;
use crate::scrollback::{Kind, Scrollback};

/// How many lines the scrollback keeps.
pub const SCROLLBACK: usize = 5_000;

/// What the event loop should do after a key press.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this line to the server.
    Send(String),
    /// Send this direct message, then `/ping`: the pong says the server took it (see
    /// [`Pings`]), and only then is it shown as sent.
    SendDm(String),
    /// Leave now.
    Exit,
}

/// Whether the server can still be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connected,
    /// The connection ended, for this reason.
    Lost(String),
}

/// Everything the terminal UI shows.
#[derive(Debug)]
pub struct App {
    /// The server as the user named it, for the status line.
    addr: String,
    /// The registered name, or the name being tried before registration succeeds.
    name: String,
    registered: bool,
    /// Where plain text goes, as last announced by `* Now talking in ROOM`.
    room: Option<String>,
    link: Link,
    /// Set once the user asked to leave; the close that follows is then no surprise.
    quitting: bool,
    pub scrollback: Scrollback,
    pub input: InputLine,
    /// Hides the answers to the keepalive's own pings.
    pings: Pings,
    /// How many entries PageUp and PageDown move: about what the screen last showed.
    pub page: usize,
}

impl App {
    pub fn new(addr: &str, name: &str) -> Self {
        App {
            addr: addr.to_string(),
            name: name.to_string(),
            registered: false,
            room: None,
            link: Link::Connected,
            quitting: false,
            scrollback: Scrollback::new(SCROLLBACK),
            input: InputLine::new(DEFAULT_MAX_LINE),
            pings: Pings::default(),
            page: 10,
        }
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_registered(&self) -> bool {
        self.registered
    }

    pub fn room(&self) -> Option<&str> {
        self.room.as_deref()
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn is_connected(&self) -> bool {
        self.link == Link::Connected
    }

    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// Notes that the keepalive sent a `/ping`, whose `* pong` is then not shown.
    pub fn sent_keepalive(&mut self) {
        self.pings.sent_keepalive();
    }

    /// Takes in one line from the server.
    pub fn on_server_line(&mut self, line: &str) {
        match self.pings.answer(line) {
            Pong::NotOne | Pong::Show => {}
            Pong::Hide => return,
            Pong::Sent(echo) => {
                self.scrollback.push(Kind::Own, echo);
                return;
            }
        }
        let kind = match parse_server_line(line) {
            ServerLine::Error(_) => {
                self.pings.error();
                Kind::Error
            }
            ServerLine::Info(text) => {
                self.track(text);
                Kind::Info
            }
            ServerLine::Room { kind, .. } => match kind {
                MessageKind::Normal => Kind::Room,
                MessageKind::Action => Kind::Action,
                MessageKind::Notice => Kind::Notice,
                // The line protocol never shows a tag-only message.
                MessageKind::Tags => Kind::Other,
            },
            ServerLine::Direct { .. } => Kind::Direct,
            ServerLine::Other(_) => Kind::Other,
        };
        self.scrollback.push(kind, sanitize(line));
    }

    /// Follows the registration, the current room and this user's name through the
    /// server's information lines.
    fn track(&mut self, text: &str) {
        if let Some(name) = text.strip_prefix("Your user detail saved as : ") {
            self.registered = true;
            self.name = name.trim().to_string();
        } else if let Some(room) = text.strip_prefix("Now talking in ") {
            self.room = Some(room.trim().to_string());
        } else if text.starts_with("You are in no room") {
            self.room = None;
        } else if let Some((old, new)) = text.split_once(" is now known as ") {
            // Names are single words; anything else is someone's chatter, not a rename.
            let word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
            if word(old) && word(new) && old.eq_ignore_ascii_case(&self.name) {
                self.name = new.to_string();
            }
        }
    }

    /// Notes a line from the server that was too long to keep.
    pub fn on_overlong_line(&mut self) {
        self.scrollback.push(
            Kind::Client,
            "(a line from the server was too long to show)",
        );
    }

    /// Records that the connection ended.
    pub fn on_lost(&mut self, reason: &str) {
        if !self.is_connected() {
            return;
        }
        self.link = Link::Lost(reason.to_string());
        let hint = if self.quitting {
            ""
        } else {
            " Press any key to exit."
        };
        self.scrollback
            .push(Kind::Error, format!("Connection lost: {reason}.{hint}"));
        self.scrollback.scroll_to_bottom();
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        if !self.is_connected() {
            return Some(Action::Exit);
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') if ctrl => return self.quit(),
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return self.quit(),
            KeyCode::Char('d') if ctrl => self.input.delete(),
            KeyCode::Char('u') if ctrl => self.input.clear(),
            KeyCode::Char('w') if ctrl => self.input.delete_word(),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char(c) if !ctrl && !alt => self.input.insert(c),
            KeyCode::Enter => return self.submit(),
            KeyCode::Backspace => self.input.backspace(),
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.older(),
            KeyCode::Down => self.input.newer(),
            KeyCode::PageUp => self.scrollback.scroll_up(self.page),
            KeyCode::PageDown => self.scrollback.scroll_down(self.page),
            _ => {}
        }
        None
    }

    /// Ctrl-C or Ctrl-D: says goodbye to the server, or leaves at once if that was
    /// already done and the server is not answering.
    fn quit(&mut self) -> Option<Action> {
        if self.quitting {
            return Some(Action::Exit);
        }
        self.quitting = true;
        Some(Action::Send("/quit".into()))
    }

    /// Enter: sends the line, echoing what the server will not send back.
    fn submit(&mut self) -> Option<Action> {
        if self.quitting {
            return None;
        }
        let line = self.input.submit();
        let echo = match parse_input(&line) {
            Input::Empty => return None,
            Input::Register(name) if !self.registered => {
                // Shown on the status line until the server says yes or no.
                self.name = name.to_string();
                None
            }
            Input::Say(text) => self.room_echo(&format!("{}: {text}", self.name)),
            Input::Action(text) => self.room_echo(&format!("* {} {text}", self.name)),
            Input::Direct { to, text } if self.registered => {
                // Shown once the server has taken it: "@nobody:hi" must not look sent.
                self.pings.sent_after_dm(format!("[dm → {to}] {text}"));
                self.scrollback.scroll_to_bottom();
                return Some(Action::SendDm(line));
            }
            Input::Ping if self.registered => {
                // Before registration the server answers with an error, not a pong.
                self.pings.sent_by_user(&line);
                None
            }
            Input::Quit(_) => {
                self.quitting = true;
                None
            }
            _ => None,
        };
        if let Some(echo) = echo {
            self.scrollback.push(Kind::Own, echo);
        }
        self.scrollback.scroll_to_bottom();
        Some(Action::Send(line))
    }

    /// The echo of a message to the current room, if there is one to send it to; if
    /// not, the server's error says so.
    fn room_echo(&self, body: &str) -> Option<String> {
        match (&self.room, self.registered) {
            (Some(room), true) => Some(format!("[{room}] {body}")),
            _ => None,
        }
    }
}

/// Makes a server line safe to put on the screen: a control character could move the
/// cursor or recolour the terminal, so each becomes U+FFFD, and a tab a space.
fn sanitize(line: &str) -> String {
    line.chars()
        .map(|c| match c {
            '\t' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> App {
        let mut app = App::new("127.0.0.1:7878", "alice");
        for line in [
            "* Welcome to confab! You are connected from: 127.0.0.1:50000",
            "* Register with #name, then type to chat.",
            "* Your user detail saved as : Alice",
            "* Alice joined lobby",
            "* Members of lobby (1): Alice",
            "* Now talking in lobby",
        ] {
            app.on_server_line(line);
        }
        app
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn type_line(app: &mut App, line: &str) -> Option<Action> {
        for c in line.chars() {
            assert_eq!(app.on_key(key(KeyCode::Char(c))), None);
        }
        app.on_key(key(KeyCode::Enter))
    }

    fn last(app: &App) -> (Kind, &str) {
        let entry = app.scrollback.visible().next().expect("a line");
        (entry.kind, entry.text.as_str())
    }

    #[test]
    fn tracks_registration_room_and_nick() {
        let mut app = App::new("h:1", "alice");
        assert!(!app.is_registered());
        assert_eq!(app.room(), None);
        let mut app2 = registered();
        assert!(app2.is_registered());
        assert_eq!(app2.name(), "Alice", "the server's spelling wins");
        assert_eq!(app2.room(), Some("lobby"));
        app2.on_server_line("* Now talking in rust");
        assert_eq!(app2.room(), Some("rust"));
        app2.on_server_line("* You are in no room; /join ROOM to talk");
        assert_eq!(app2.room(), None);
        app2.on_server_line("* bob is now known as carol");
        assert_eq!(app2.name(), "Alice", "other people's renames are not ours");
        app2.on_server_line("[lobby] bob: alice is now known as eve");
        assert_eq!(app2.name(), "Alice", "chatter is not a rename");
        app2.on_server_line("* alice is now known as Al");
        assert_eq!(app2.name(), "Al");
        app.on_server_line("! Name alice is already taken");
        assert_eq!(last(&app).0, Kind::Error);
        assert!(!app.is_registered());
    }

    #[test]
    fn classifies_server_lines() {
        let mut app = registered();
        let cases = [
            ("! No such user: zed", Kind::Error),
            ("* bob joined lobby", Kind::Info),
            ("[lobby] bob: hi", Kind::Room),
            ("[lobby] * bob waves", Kind::Action),
            ("[lobby] -bot- notice", Kind::Notice),
            ("[dm] bob: psst", Kind::Direct),
            ("hello from netcat", Kind::Other),
        ];
        for (line, kind) in cases {
            app.on_server_line(line);
            assert_eq!(last(&app), (kind, line));
        }
        app.on_server_line("[lobby] bob: \x1b[2Jboo\tx");
        assert_eq!(last(&app).1, "[lobby] bob: \u{fffd}[2Jboo x");
    }

    #[test]
    fn echoes_what_the_server_does_not_send_back() {
        let mut app = registered();
        assert_eq!(
            type_line(&mut app, "hello"),
            Some(Action::Send("hello".into()))
        );
        assert_eq!(last(&app), (Kind::Own, "[lobby] Alice: hello"));
        assert_eq!(
            type_line(&mut app, "@bob:hi"),
            Some(Action::SendDm("@bob:hi".into()))
        );
        app.on_server_line("* pong");
        assert_eq!(last(&app), (Kind::Own, "[dm → bob] hi"));
        type_line(&mut app, "/me waves");
        assert_eq!(last(&app), (Kind::Own, "[lobby] * Alice waves"));
        type_line(&mut app, "//etc");
        assert_eq!(last(&app), (Kind::Own, "[lobby] Alice: /etc"));
        let before = app.scrollback.len();
        assert_eq!(
            type_line(&mut app, "/who"),
            Some(Action::Send("/who".into()))
        );
        assert_eq!(type_line(&mut app, "   "), None);
        assert_eq!(app.scrollback.len(), before, "commands are not echoed");
        app.on_server_line("* You are in no room; /join ROOM to talk");
        type_line(&mut app, "anyone?");
        assert_eq!(app.scrollback.len(), before + 1, "no room, no echo");
    }

    /// The server is silent about a direct message it delivers and answers one it
    /// refuses with an error, so a message is shown as sent only when the pong of the
    /// `/ping` sent after it comes back with no error before it.
    #[test]
    fn a_direct_message_shows_as_sent_only_once_the_server_took_it() {
        let mut app = registered();
        let before = app.scrollback.len();
        assert_eq!(
            type_line(&mut app, "@nobody:hello?"),
            Some(Action::SendDm("@nobody:hello?".into()))
        );
        assert_eq!(
            app.scrollback.len(),
            before,
            "nothing shown while in flight"
        );
        app.on_server_line("! No such user: nobody is not online");
        app.on_server_line("* pong");
        let shown: Vec<_> = app.scrollback.visible().map(|e| e.text.clone()).collect();
        assert_eq!(shown[0], "! No such user: nobody is not online");
        assert!(
            !shown.iter().any(|t| t.contains("dm → nobody")),
            "a refused message never looks sent: {shown:?}"
        );
        assert_eq!(app.scrollback.len(), before + 1, "the pong is hidden");

        // Two messages in flight, the first taken, the second refused; a room message
        // arriving meanwhile is shown as it comes.
        type_line(&mut app, "@bob:one");
        type_line(&mut app, "@ghost:two");
        app.on_server_line("[lobby] carol: meanwhile");
        app.on_server_line("* pong");
        assert_eq!(last(&app), (Kind::Own, "[dm → bob] one"));
        app.on_server_line("! No such user: ghost is not online");
        app.on_server_line("* pong");
        assert_eq!(last(&app).0, Kind::Error);
        // An error that comes before an earlier ping's pong is not the message's.
        app.sent_keepalive();
        type_line(&mut app, "@bob:three");
        app.on_server_line("! Something else went wrong");
        app.on_server_line("* pong");
        app.on_server_line("* pong");
        assert_eq!(last(&app), (Kind::Own, "[dm → bob] three"));
    }

    #[test]
    fn a_refused_name_can_be_retried() {
        let mut app = App::new("h:1", "alice");
        app.on_server_line("! Name alice is already taken");
        assert_eq!(type_line(&mut app, "hi"), Some(Action::Send("hi".into())));
        assert_eq!(last(&app).0, Kind::Error, "no echo before registration");
        assert_eq!(
            type_line(&mut app, "#alice2"),
            Some(Action::Send("#alice2".into()))
        );
        assert_eq!(app.name(), "alice2");
        app.on_server_line("* Your user detail saved as : alice2");
        assert!(app.is_registered());
    }

    #[test]
    fn hides_only_keepalive_pongs() {
        let mut app = registered();
        app.sent_keepalive();
        type_line(&mut app, "/ping");
        let before = app.scrollback.len();
        app.on_server_line("* pong");
        assert_eq!(
            app.scrollback.len(),
            before,
            "the keepalive's pong is hidden"
        );
        app.on_server_line("* pong");
        assert_eq!(
            last(&app),
            (Kind::Info, "* pong"),
            "the user's pong is shown"
        );
    }

    #[test]
    fn ctrl_c_quits_and_a_second_press_exits() {
        let mut app = registered();
        for c in "abc".chars() {
            app.on_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.on_key(ctrl('d')), None, "Ctrl-D on text deletes");
        assert_eq!(app.on_key(ctrl('c')), Some(Action::Send("/quit".into())));
        assert!(app.is_quitting());
        assert_eq!(app.on_key(ctrl('c')), Some(Action::Exit));
        app.on_lost("the server closed the connection");
        assert!(!app.is_connected());
    }

    #[test]
    fn ctrl_d_on_an_empty_line_and_exit_words_quit() {
        let mut app = registered();
        assert_eq!(app.on_key(ctrl('d')), Some(Action::Send("/quit".into())));
        let mut app = registered();
        assert_eq!(
            type_line(&mut app, "bye bye"),
            Some(Action::Send("bye bye".into()))
        );
        assert!(app.is_quitting());
    }

    #[test]
    fn after_the_connection_is_lost_any_key_exits() {
        let mut app = registered();
        app.on_lost("connection reset");
        assert_eq!(
            last(&app),
            (
                Kind::Error,
                "Connection lost: connection reset. Press any key to exit."
            )
        );
        app.on_lost("again");
        assert_eq!(app.link(), &Link::Lost("connection reset".into()));
        assert_eq!(app.on_key(key(KeyCode::Char('x'))), Some(Action::Exit));
    }

    #[test]
    fn keys_edit_scroll_and_recall() {
        let mut app = registered();
        for i in 0..50 {
            app.on_server_line(&format!("[lobby] bob: {i}"));
        }
        app.page = 20;
        app.on_key(key(KeyCode::PageUp));
        assert_eq!(app.scrollback.offset(), 20);
        app.on_key(key(KeyCode::PageDown));
        assert_eq!(app.scrollback.offset(), 0);
        type_line(&mut app, "first");
        for code in [KeyCode::Char('x'), KeyCode::Char('y'), KeyCode::Left] {
            app.on_key(key(code));
        }
        app.on_key(key(KeyCode::Backspace));
        assert_eq!(app.input.text(), "y");
        app.on_key(ctrl('u'));
        assert!(app.input.is_empty());
        app.on_key(key(KeyCode::Up));
        assert_eq!(app.input.text(), "first");
        let release = KeyEvent {
            kind: KeyEventKind::Release,
            ..key(KeyCode::Char('z'))
        };
        app.on_key(release);
        assert_eq!(app.input.text(), "first", "key releases are not typing");
    }
}
