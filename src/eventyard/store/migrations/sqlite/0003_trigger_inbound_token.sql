-- Every trigger gets an inbound webhook token: the 32-hex `hook_id` of its CDP webhook URL
-- `/cdp/webhooks/{hook_id}`. Existing triggers get a random one; new ones get theirs from
-- the application at creation. SQLite cannot add a NOT NULL column without a default, so
-- the application always sets it and the unique index keeps two triggers from sharing one.

ALTER TABLE triggers ADD COLUMN inbound_token TEXT;
UPDATE triggers SET inbound_token = lower(hex(randomblob(16))) WHERE inbound_token IS NULL;
CREATE UNIQUE INDEX triggers_inbound_token ON triggers (inbound_token);
