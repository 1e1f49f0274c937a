//! The terminal UI's model: the conversation, the line being typed and the status, as
//! plain data changed by plain methods, so it is tested without a terminal.

use std::collections::VecDeque;

use confab_wire::peer::is_exit_word;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::chat::{Mark, Show, Status};

/// Entries kept for scrolling back; older ones are forgotten.
const SCROLLBACK: usize = 2000;
/// The longest line the input box takes, in bytes.
const MAX_INPUT: usize = 16 * 1024;

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Friend(String),
    /// The user's own message. `id` is set when the transport gives receipts; `mark`
    /// says what became of it.
    Mine {
        id: Option<u64>,
        text: String,
        mark: Option<Mark>,
    },
    Notice(String),
}

/// What a key asks of the transport.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Send(String),
    Leave,
    /// A second request to leave while still waiting for acknowledgements.
    QuitNow,
}

#[derive(Debug, Default)]
pub(crate) struct App {
    pub entries: VecDeque<Entry>,
    /// The line being typed, and the cursor as a character index into it.
    pub input: String,
    pub cursor: usize,
    pub status: Option<Status>,
    /// Rows scrolled back from the newest entry.
    pub scroll: usize,
    pub leaving: bool,
}

impl App {
    fn push(&mut self, entry: Entry) {
        if self.entries.len() == SCROLLBACK {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Takes something the transport wants shown.
    pub fn apply(&mut self, show: Show) {
        match show {
            Show::Incoming(text) => self.push(Entry::Friend(text)),
            Show::Outgoing { id, text } => {
                // Without receipts, being written to the connection is all there is.
                let mark = if id.is_none() { Some(Mark::Sent) } else { None };
                self.push(Entry::Mine { id, text, mark });
            }
            Show::Mark(marked, new) => {
                let found = self.entries.iter_mut().rev().find_map(|e| match e {
                    Entry::Mine {
                        id: Some(id), mark, ..
                    } if *id == marked => Some(mark),
                    _ => None,
                });
                if let Some(mark) = found {
                    *mark = Some(new);
                }
            }
            Show::Notice(text) => self.push(Entry::Notice(text)),
            Show::Status(status) => self.status = Some(status),
        }
    }

    /// The last notices, for printing after the terminal is restored.
    pub fn last_notices(&self, n: usize) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .entries
            .iter()
            .rev()
            .filter_map(|e| match e {
                Entry::Notice(text) => Some(text.as_str()),
                _ => None,
            })
            .take(n)
            .collect();
        out.reverse();
        out
    }

    fn byte_index(&self, chars: usize) -> usize {
        self.input
            .char_indices()
            .nth(chars)
            .map_or(self.input.len(), |(i, _)| i)
    }

    fn leave(&mut self) -> Action {
        if self.leaving {
            return Action::QuitNow;
        }
        self.leaving = true;
        self.push(Entry::Notice(
            "leaving: waiting for the friend to acknowledge (Ctrl-C again to quit now)".into(),
        ));
        Action::Leave
    }

    /// Edits the input line, or returns what the key asks of the transport.
    pub fn key(&mut self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let len = self.input.chars().count();
        match key.code {
            KeyCode::Char('c') if ctrl => return Some(self.leave()),
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return Some(self.leave()),
            KeyCode::Esc => return Some(self.leave()),
            KeyCode::Char('d') if ctrl => self.delete_at_cursor(),
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = len,
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.cursor = 0;
            }
            KeyCode::Char(_) if ctrl => {}
            KeyCode::Char(c) if self.input.len() + c.len_utf8() <= MAX_INPUT && !self.leaving => {
                let at = self.byte_index(self.cursor);
                self.input.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.delete_at_cursor();
            }
            KeyCode::Delete => self.delete_at_cursor(),
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            KeyCode::PageUp => self.scroll = self.scroll.saturating_add(10),
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::Enter if !self.input.is_empty() && !self.leaving => {
                let line = std::mem::take(&mut self.input);
                self.cursor = 0;
                self.scroll = 0;
                if is_exit_word(&line) {
                    return Some(self.leave());
                }
                return Some(Action::Send(line));
            }
            _ => {}
        }
        None
    }

    fn delete_at_cursor(&mut self) {
        if self.cursor < self.input.chars().count() {
            let at = self.byte_index(self.cursor);
            self.input.remove(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(app: &mut App, code: KeyCode) -> Option<Action> {
        app.key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(app: &mut App, c: char) -> Option<Action> {
        app.key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn type_text(app: &mut App, text: &str) {
        for c in text.chars() {
            press(app, KeyCode::Char(c));
        }
    }

    #[test]
    fn editing_and_sending_a_line() {
        let mut app = App::default();
        type_text(&mut app, "héllo");
        press(&mut app, KeyCode::Left);
        press(&mut app, KeyCode::Backspace);
        type_text(&mut app, "L");
        assert_eq!((app.input.as_str(), app.cursor), ("hélLo", 4));
        ctrl(&mut app, 'a');
        press(&mut app, KeyCode::Delete);
        assert_eq!(app.input, "élLo");
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            Some(Action::Send("élLo".into()))
        );
        assert!(app.input.is_empty());
        assert_eq!(
            press(&mut app, KeyCode::Enter),
            None,
            "an empty line is not sent"
        );
    }

    #[test]
    fn exit_words_ctrl_d_and_ctrl_c_leave_and_a_second_quits() {
        let mut app = App::default();
        type_text(&mut app, "bye bye");
        assert_eq!(press(&mut app, KeyCode::Enter), Some(Action::Leave));
        assert_eq!(ctrl(&mut app, 'c'), Some(Action::QuitNow));

        let mut app = App::default();
        type_text(&mut app, "x");
        assert_eq!(
            ctrl(&mut app, 'd'),
            None,
            "Ctrl-D on a non-empty line deletes"
        );
        ctrl(&mut app, 'u');
        assert_eq!(ctrl(&mut app, 'd'), Some(Action::Leave));
    }

    #[test]
    fn marks_land_on_the_right_message() {
        let mut app = App::default();
        app.apply(Show::Outgoing {
            id: Some(1),
            text: "one".into(),
        });
        app.apply(Show::Outgoing {
            id: Some(2),
            text: "two".into(),
        });
        app.apply(Show::Outgoing {
            id: None,
            text: "over tcp".into(),
        });
        app.apply(Show::Mark(2, Mark::Delivered));
        let marks: Vec<_> = app
            .entries
            .iter()
            .map(|e| match e {
                Entry::Mine { mark, .. } => *mark,
                _ => None,
            })
            .collect();
        assert_eq!(marks, [None, Some(Mark::Delivered), Some(Mark::Sent)]);
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut app = App::default();
        for i in 0..SCROLLBACK + 10 {
            app.apply(Show::Incoming(i.to_string()));
        }
        assert_eq!(app.entries.len(), SCROLLBACK);
        assert_eq!(app.entries.front(), Some(&Entry::Friend("10".into())));
    }
}
