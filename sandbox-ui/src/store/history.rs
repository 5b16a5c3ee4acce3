//! Conversations and their messages, and the recovery of answers a crash cut off.

use super::{
    Conversation, DEFAULT_TITLE, Message, MessageStatus, Store, StoreError, conversation_key,
    decode, encode, message_key, now, title_from,
};

impl Store {
    /// Marks answers left `streaming` by a crash or restart as failed (their text is
    /// kept); returns how many. Run at start-up, before anything streams.
    pub fn recover_interrupted(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.messages.iter() {
            let (k, v) = kv?;
            let mut m: Message = decode(&v)?;
            if m.status == MessageStatus::Streaming {
                m.status = MessageStatus::Failed;
                m.error = Some(
                    "This answer was cut off because the chat server restarted while writing it. Its text so far is kept; Regenerate writes a new one."
                        .into(),
                );
                self.messages.insert(k, encode(&m)?)?;
                n += 1;
            }
        }
        if n > 0 {
            self.flush()?;
        }
        Ok(n)
    }

    /// Starts a conversation.
    pub fn create_conversation(&self, user: &str, title: &str) -> Result<Conversation, StoreError> {
        let t = now();
        let c = Conversation {
            id: self.db.generate_id()?,
            user: user.to_owned(),
            title: title.to_owned(),
            title_auto: false,
            created: t,
            updated: t,
            system_prompt: None,
            temperature: None,
            max_tokens: None,
        };
        self.save_conversation(&c)?;
        Ok(c)
    }

    /// Stores a conversation's settings and title.
    pub fn save_conversation(&self, c: &Conversation) -> Result<(), StoreError> {
        self.conversations
            .insert(conversation_key(&c.user, c.id), encode(c)?)?;
        self.flush()
    }

    /// A user's conversation.
    pub fn conversation(&self, user: &str, id: u64) -> Result<Conversation, StoreError> {
        let bytes = self
            .conversations
            .get(conversation_key(user, id))?
            .ok_or(StoreError::NotFound("conversation"))?;
        decode(&bytes)
    }

    /// A user's conversations, most recently updated first.
    pub fn conversations(&self, user: &str) -> Result<Vec<Conversation>, StoreError> {
        let mut prefix = user.as_bytes().to_vec();
        prefix.push(0);
        let mut list = self
            .conversations
            .scan_prefix(prefix)
            .map(|kv| decode::<Conversation>(&kv?.1))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| b.updated.cmp(&a.updated).then(b.id.cmp(&a.id)));
        Ok(list)
    }

    /// Deletes a conversation and its messages.
    pub fn delete_conversation(&self, user: &str, id: u64) -> Result<(), StoreError> {
        self.conversation(user, id)?;
        for kv in self.messages.scan_prefix(id.to_be_bytes()) {
            self.messages.remove(kv?.0)?;
        }
        self.conversations.remove(conversation_key(user, id))?;
        self.flush()
    }

    /// The messages of a conversation, in order.
    pub fn messages(&self, conversation: u64) -> Result<Vec<Message>, StoreError> {
        self.messages
            .scan_prefix(conversation.to_be_bytes())
            .map(|kv| decode(&kv?.1))
            .collect()
    }

    /// Appends a message and flushes it to disk before returning. `c` is refreshed
    /// from the stored record first, so a rename or settings change made meanwhile (in
    /// another tab) is kept.
    pub fn add_message(
        &self,
        c: &mut Conversation,
        role: &str,
        content: &str,
        status: MessageStatus,
    ) -> Result<Message, StoreError> {
        let seq = self
            .messages
            .scan_prefix(c.id.to_be_bytes())
            .keys()
            .next_back()
            .transpose()?
            .and_then(|k| <[u8; 8]>::try_from(&k[8..]).ok().map(u64::from_be_bytes))
            .map_or(0, |s| s + 1);
        let m = Message {
            conversation: c.id,
            seq,
            role: role.to_owned(),
            content: content.to_owned(),
            status,
            error: None,
            created: now(),
            details: None,
            versions: Vec::new(),
            version: 0,
        };
        self.messages.insert(message_key(c.id, seq), encode(&m)?)?;
        if let Some(stored) = self.conversations.get(conversation_key(&c.user, c.id))? {
            *c = decode(&stored)?;
        }
        c.updated = m.created;
        if seq == 0 && role == "user" && (c.title_auto || c.title == DEFAULT_TITLE) {
            c.title = title_from(content);
            c.title_auto = true;
        }
        self.conversations
            .insert(conversation_key(&c.user, c.id), encode(c)?)?;
        self.flush()?;
        Ok(m)
    }

    /// Replaces a message's text and status (a streamed answer as it grows, then its
    /// end), flushed to disk. Only an existing message is replaced: an answer still
    /// being written when its conversation is deleted is not brought back.
    pub fn update_message(&self, m: &Message) -> Result<(), StoreError> {
        let bytes = encode(m)?;
        let before = self
            .messages
            .fetch_and_update(message_key(m.conversation, m.seq), |old| {
                old.map(|_| bytes.clone())
            })?;
        if before.is_none() {
            return Err(StoreError::NotFound("message"));
        }
        self.flush()
    }

    /// Removes the messages from `seq` on (regenerate, edit and resend).
    pub fn truncate(&self, conversation: u64, seq: u64) -> Result<(), StoreError> {
        for kv in self
            .messages
            .range(message_key(conversation, seq)..message_key(conversation, u64::MAX))
        {
            self.messages.remove(kv?.0)?;
        }
        self.flush()
    }
}
