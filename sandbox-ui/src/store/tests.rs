use std::path::PathBuf;

use super::*;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sandbox-ui-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn passwords_are_argon2_hashed_and_checked() {
    let s = Store::open(&dir("users")).unwrap();
    let u = s.create_user("admin", "correct horse").unwrap();
    assert!(u.password_hash.starts_with("$argon2id$"));
    assert!(!u.password_hash.contains("correct horse"));
    assert!(s.verify_password("admin", "correct horse").unwrap());
    assert!(!s.verify_password("admin", "wrong").unwrap());
    assert!(!s.verify_password("nobody", "correct horse").unwrap());
    assert!(matches!(
        s.create_user("admin", "x"),
        Err(StoreError::UserExists(_))
    ));
    s.set_password("admin", "new one").unwrap();
    assert!(s.verify_password("admin", "new one").unwrap());
    assert!(!s.verify_password("admin", "correct horse").unwrap());
}

#[test]
fn sessions_expire_and_can_be_ended() {
    let s = Store::open(&dir("sessions")).unwrap();
    let live = s.create_session("admin", 3600).unwrap();
    assert_eq!(live.token.len(), 64);
    assert_ne!(live.token, live.csrf);
    assert_eq!(s.session(&live.token).unwrap().unwrap().user, "admin");
    let dead = s.create_session("admin", 0).unwrap();
    assert!(s.session(&dead.token).unwrap().is_none());
    s.delete_session(&live.token).unwrap();
    assert!(s.session(&live.token).unwrap().is_none());
    assert!(s.session("made-up").unwrap().is_none());
}

#[test]
fn conversations_and_messages_survive_reopening() {
    let d = dir("persist");
    let id = {
        let s = Store::open(&d).unwrap();
        let mut c = s.create_conversation("admin", "New chat").unwrap();
        s.add_message(
            &mut c,
            "user",
            "What is the capital of France?\nThanks",
            MessageStatus::Complete,
        )
        .unwrap();
        let mut answer = s
            .add_message(&mut c, "assistant", "", MessageStatus::Streaming)
            .unwrap();
        answer.content.push_str("Paris");
        s.update_message(&answer).unwrap();
        c.id
        // Dropped without a clean shutdown: what was flushed must be there.
    };
    let s = Store::open(&d).unwrap();
    let c = s.conversation("admin", id).unwrap();
    assert_eq!(c.title, "What is the capital of France?");
    let msgs = s.messages(id).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        (msgs[1].content.as_str(), msgs[1].status),
        ("Paris", MessageStatus::Streaming)
    );
    assert!(matches!(
        s.conversation("someone-else", id),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn listing_is_newest_first_and_delete_removes_messages() {
    let s = Store::open(&dir("list")).unwrap();
    let mut a = s.create_conversation("u", "a").unwrap();
    let mut b = s.create_conversation("u", "b").unwrap();
    s.create_conversation("other", "not mine").unwrap();
    b.updated += 10;
    s.save_conversation(&b).unwrap();
    let titles: Vec<_> = s
        .conversations("u")
        .unwrap()
        .into_iter()
        .map(|c| c.title)
        .collect();
    assert_eq!(titles, ["b", "a"]);
    s.add_message(&mut a, "user", "hi", MessageStatus::Complete)
        .unwrap();
    s.delete_conversation("u", a.id).unwrap();
    assert!(s.messages(a.id).unwrap().is_empty());
    assert_eq!(s.conversations("u").unwrap().len(), 1);
}

#[test]
fn truncate_drops_the_tail_for_regenerate() {
    let s = Store::open(&dir("truncate")).unwrap();
    let mut c = s.create_conversation("u", "t").unwrap();
    for (role, text) in [
        ("user", "1"),
        ("assistant", "2"),
        ("user", "3"),
        ("assistant", "4"),
    ] {
        s.add_message(&mut c, role, text, MessageStatus::Complete)
            .unwrap();
    }
    s.truncate(c.id, 3).unwrap();
    let left: Vec<_> = s
        .messages(c.id)
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(left, ["1", "2", "3"]);
    let next = s
        .add_message(&mut c, "assistant", "4b", MessageStatus::Complete)
        .unwrap();
    assert_eq!(next.seq, 3);
}

#[test]
fn a_newer_schema_is_refused() {
    let d = dir("schema");
    {
        let db = sled::open(&d).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", &99u32.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Store::open(&d),
        Err(StoreError::NewerSchema { found: 99 })
    ));
}

#[test]
fn titles_and_exports() {
    assert_eq!(title_from("\n  Hello there \nsecond"), "Hello there");
    let long = "Please explain in detail how the transformer architecture handles very long inputs";
    let t = title_from(long);
    assert!(t.ends_with('…') && t.chars().count() <= 49, "{t}");
    let s = Store::open(&dir("export")).unwrap();
    let mut c = s.create_conversation("u", DEFAULT_TITLE).unwrap();
    s.add_message(&mut c, "user", "Hi", MessageStatus::Complete)
        .unwrap();
    s.add_message(&mut c, "assistant", "Hello!", MessageStatus::Stopped)
        .unwrap();
    let msgs = s.messages(c.id).unwrap();
    let md = to_markdown(&c, &msgs);
    assert!(md.starts_with("# Hi\n") && md.contains("**Assistant** (stopped):\n\nHello!"));
    let j = to_json(&c, &msgs);
    assert_eq!(j["messages"][1]["status"], "stopped");
}

#[test]
fn interrupted_answers_are_marked_failed_with_their_text_kept() {
    let s = Store::open(&dir("recover")).unwrap();
    let mut c = s.create_conversation("admin", "New chat").unwrap();
    s.add_message(&mut c, "user", "Hi", MessageStatus::Complete)
        .unwrap();
    let mut a = s
        .add_message(&mut c, "assistant", "", MessageStatus::Streaming)
        .unwrap();
    a.content = "Half an ans".into();
    s.update_message(&a).unwrap();
    assert_eq!(s.recover_interrupted().unwrap(), 1);
    let m = s.messages(c.id).unwrap();
    assert_eq!(m[1].status, MessageStatus::Failed);
    assert_eq!(m[1].content, "Half an ans");
    assert!(
        m[1].error
            .as_deref()
            .unwrap()
            .contains("the chat server restarted")
    );
    assert_eq!(m[0].status, MessageStatus::Complete);
    assert_eq!(s.recover_interrupted().unwrap(), 0);
}

#[test]
fn password_change_can_end_the_other_sessions() {
    let s = Store::open(&dir("other-sessions")).unwrap();
    assert!(!s.has_users().unwrap());
    s.create_user("admin", "pw-one-long").unwrap();
    assert!(s.has_users().unwrap());
    assert_eq!(s.user_names().unwrap(), vec!["admin".to_owned()]);
    let mine = s.create_session("admin", 3600).unwrap();
    let other = s.create_session("admin", 3600).unwrap();
    let someone_else = s.create_session("bob", 3600).unwrap();
    s.delete_sessions_of("admin", &mine.token).unwrap();
    assert!(s.session(&mine.token).unwrap().is_some());
    assert!(s.session(&other.token).unwrap().is_none());
    assert!(s.session(&someone_else.token).unwrap().is_some());
}

#[test]
fn an_answer_written_after_its_chat_was_deleted_is_not_brought_back() {
    let s = Store::open(&dir("resurrect")).unwrap();
    let mut c = s.create_conversation("admin", DEFAULT_TITLE).unwrap();
    s.add_message(&mut c, "user", "Hi", MessageStatus::Complete)
        .unwrap();
    let mut a = s
        .add_message(&mut c, "assistant", "", MessageStatus::Streaming)
        .unwrap();
    s.delete_conversation("admin", c.id).unwrap();
    a.content = "late text".into();
    assert!(matches!(s.update_message(&a), Err(StoreError::NotFound(_))));
    assert!(s.messages(c.id).unwrap().is_empty());
}

#[test]
fn titles_follow_the_first_question_until_the_user_renames() {
    let s = Store::open(&dir("title-auto")).unwrap();
    let mut c = s.create_conversation("admin", DEFAULT_TITLE).unwrap();
    s.add_message(&mut c, "user", "First idea", MessageStatus::Complete)
        .unwrap();
    assert_eq!(c.title, "First idea");
    // Edit of the first question: the made-up title follows it.
    s.truncate(c.id, 0).unwrap();
    s.add_message(&mut c, "user", "Second idea", MessageStatus::Complete)
        .unwrap();
    assert_eq!(c.title, "Second idea");
    // A rename in another tab is kept by the next message, and edits no longer retitle.
    let mut renamed = s.conversation("admin", c.id).unwrap();
    renamed.title = "Mine".into();
    renamed.title_auto = false;
    renamed.temperature = Some(0.5);
    s.save_conversation(&renamed).unwrap();
    s.truncate(c.id, 0).unwrap();
    s.add_message(&mut c, "user", "Third idea", MessageStatus::Complete)
        .unwrap();
    assert_eq!(c.title, "Mine");
    assert_eq!(c.temperature, Some(0.5));
}

#[test]
fn search_finds_by_title_or_text_most_recent_first_and_only_the_users_own() {
    let s = Store::open(&dir("search")).unwrap();
    let mut a = s.create_conversation("ann", "Trip planning").unwrap();
    s.add_message(
        &mut a,
        "user",
        "Ferries to Zanzibar?",
        MessageStatus::Complete,
    )
    .unwrap();
    let mut b = s.create_conversation("ann", "Zanzibar history").unwrap();
    s.add_message(&mut b, "user", "Who ruled it?", MessageStatus::Complete)
        .unwrap();
    let mut other = s.create_conversation("bob", "Bob's Zanzibar").unwrap();
    s.add_message(&mut other, "user", "zanzibar", MessageStatus::Complete)
        .unwrap();
    let hits = s.search("ann", "zanzibar", 10).unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].title, "Zanzibar history", "most recent first");
    assert_eq!(hits[0].snippet, None, "the title matched");
    assert_eq!(hits[1].snippet.as_deref(), Some("Ferries to Zanzibar?"));
    assert_eq!(s.search("ann", "zanzibar", 1).unwrap().len(), 1);
    assert!(s.search("ann", "  ", 10).unwrap().is_empty());
    assert!(s.search("ann", "kelp", 10).unwrap().is_empty());
    assert_eq!(s.search("bob", "ZANZIBAR", 10).unwrap().len(), 1);
}

#[test]
fn search_sees_text_that_only_lowercases_into_the_query() {
    let s = Store::open(&dir("search-fold")).unwrap();
    let mut c = s.create_conversation("ann", "Units").unwrap();
    // U+212A KELVIN SIGN lowercases to an ASCII "k".
    s.add_message(
        &mut c,
        "user",
        "300 \u{212A}elvin is warm",
        MessageStatus::Complete,
    )
    .unwrap();
    let mut d = s.create_conversation("ann", "Quotes").unwrap();
    s.add_message(
        &mut d,
        "user",
        "she said \"hi\" twice",
        MessageStatus::Complete,
    )
    .unwrap();
    assert_eq!(s.search("ann", "kelvin", 10).unwrap().len(), 1);
    assert_eq!(s.search("ann", "\"HI\"", 10).unwrap().len(), 1);
}

#[test]
fn regenerating_keeps_every_version_in_the_order_written() {
    let s = Store::open(&dir("versions")).unwrap();
    let mut c = s.create_conversation("ann", "v").unwrap();
    let mut m = s
        .add_message(&mut c, "assistant", "first", MessageStatus::Complete)
        .unwrap();
    m.begin_version();
    m.content = "second".into();
    m.status = MessageStatus::Truncated;
    m.begin_version();
    m.content = "third".into();
    m.status = MessageStatus::Complete;
    s.update_message(&m).unwrap();
    let mut m = s.messages(c.id).unwrap().remove(0);
    assert_eq!((m.version, m.version_count()), (2, 3));
    assert!(m.show_version(0));
    assert_eq!((m.content.as_str(), m.version), ("first", 0));
    assert!(m.show_version(1));
    assert_eq!(
        (m.content.as_str(), m.status),
        ("second", MessageStatus::Truncated)
    );
    let order: Vec<&str> = m.versions.iter().map(|v| v.content.as_str()).collect();
    assert_eq!(order, ["first", "third"]);
    assert!(!m.show_version(3));
    // Regenerating from an earlier version: the new one is the last written.
    m.begin_version();
    assert_eq!(
        (m.version, m.version_count(), m.content.as_str()),
        (3, 4, "")
    );
    let order: Vec<&str> = m.versions.iter().map(|v| v.content.as_str()).collect();
    assert_eq!(order, ["first", "second", "third"]);
}

#[test]
fn the_first_account_is_the_administrator_and_the_last_one_stays() {
    let s = Store::open(&dir("admins")).unwrap();
    s.create_user("root", "password-1").unwrap();
    s.create_user("bob", "password-2").unwrap();
    assert!(s.is_admin("root").unwrap());
    assert!(!s.is_admin("bob").unwrap());
    assert!(matches!(s.delete_user("root"), Err(StoreError::LastAdmin)));
    assert!(matches!(
        s.set_admin("root", false),
        Err(StoreError::LastAdmin)
    ));
    s.set_admin("bob", true).unwrap();
    s.set_admin("root", false).unwrap();
    let mut roles: Vec<(String, bool)> = s
        .users()
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.admin))
        .collect();
    roles.sort();
    assert_eq!(
        roles,
        [("bob".to_owned(), true), ("root".to_owned(), false)]
    );
}

#[test]
fn deleting_a_user_removes_their_sessions_and_chats_only() {
    let s = Store::open(&dir("delete-user")).unwrap();
    s.create_user("root", "password-1").unwrap();
    s.create_user("bob", "password-2").unwrap();
    let bobs = s.create_conversation("bob", "Bob's chat").unwrap();
    let roots = s.create_conversation("root", "Root's chat").unwrap();
    let session = s.create_session("bob", 3600).unwrap();
    s.delete_user("bob").unwrap();
    assert!(s.session(&session.token).unwrap().is_none());
    assert!(s.conversations("bob").unwrap().is_empty());
    assert!(s.messages(bobs.id).unwrap().is_empty());
    assert_eq!(s.conversations("root").unwrap()[0].id, roots.id);
    assert!(!s.verify_password("bob", "password-2").unwrap());
    assert!(matches!(s.delete_user("bob"), Err(StoreError::NotFound(_))));
}

#[test]
fn an_older_database_makes_its_oldest_account_the_administrator() {
    let d = dir("old-admin");
    {
        let s = Store::open(&d).unwrap();
        s.create_user("first", "password-1").unwrap();
        s.create_user("second", "password-2").unwrap();
        // Both records as written before the flag existed.
        for name in ["first", "second"] {
            let mut u: User = decode(&s.users.get(name).unwrap().unwrap()).unwrap();
            u.admin = false;
            s.users.insert(name, encode(&u).unwrap()).unwrap();
        }
        s.flush().unwrap();
    }
    let s = Store::open(&d).unwrap();
    assert!(s.is_admin("first").unwrap());
    assert!(!s.is_admin("second").unwrap());
}
