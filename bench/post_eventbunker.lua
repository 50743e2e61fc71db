-- wrk script: EventBunker's Track Event API, `POST /eventbunker/post`, one event a request.
--
-- Usage: wrk ... -s bench/post_eventbunker.lua URL -- <write key> <run tag>
--
-- The body is the document's: `event_name`, `customer_identifier` (one of 1,000 users) and
-- the event's own fields at the top level; the key goes in `x-eventbunker-write-key`.
-- EventBunker has no idempotency key, so neither do these events.

local counter = 0

function init(args)
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["x-eventbunker-write-key"] = args[1]
end

function request()
   counter = counter + 1
   local body = string.format(
      '{"event_name":"bench","customer_identifier":"u%d","amount":19.99,"plan":"pro"}',
      counter % 1000
   )
   return wrk.format(nil, nil, nil, body)
end
