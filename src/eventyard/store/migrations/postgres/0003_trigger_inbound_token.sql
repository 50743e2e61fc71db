-- Every trigger gets an inbound webhook token: the 32-hex `hook_id` of its CDP webhook URL
-- `/cdp/webhooks/{hook_id}`. Existing triggers get a random one; new ones get theirs from
-- the application at creation.

ALTER TABLE triggers ADD COLUMN inbound_token TEXT;
UPDATE triggers SET inbound_token = md5(random()::text || clock_timestamp()::text || id)
    WHERE inbound_token IS NULL;
ALTER TABLE triggers ALTER COLUMN inbound_token SET NOT NULL;
CREATE UNIQUE INDEX triggers_inbound_token ON triggers (inbound_token);
