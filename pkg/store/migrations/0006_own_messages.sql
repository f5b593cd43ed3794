-- Ingest looks for the bot's own copy of each webhook message (its reply
-- bubbles come back as outgoing messages): only our messages, by lead and
-- time, so the look-up does not scan a long chat.
CREATE INDEX messages_own ON messages (lead_id, direction, created_at) WHERE origin = 'kommo-summarizer';
