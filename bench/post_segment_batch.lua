-- wrk script: Segment's HTTP Tracking API, `POST /segment/v1/batch`, a batch a request.
--
-- Usage: wrk ... -s bench/post_segment_batch.lua URL -- <Authorization value> <messages> <tag>
--
-- The write key goes as Basic auth (what Segment's SDKs send; the harness passes the whole
-- header value). Each message is a `track` of "bench" by one of 1,000 users with the same
-- properties as the native events, and its own `messageId` ("<tag>-<thread>-<request>-<item>"),
-- which eventyard keeps as the idempotency key: the same work as post_batch.lua's items.
-- Segment answers 200 even when it drops a message, so the harness counts the rows stored.

local counter = 0
local tag = "run"
local size = 100
local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
end

function init(args)
   size = tonumber(args[2] or "100")
   if args[3] ~= nil then
      tag = args[3]
   end
   thread_no = thread_no or 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   wrk.headers["Authorization"] = args[1]
end

function request()
   counter = counter + 1
   local items = {}
   for i = 1, size do
      local n = counter * size + i
      items[i] = string.format(
         '{"type":"track","event":"bench","userId":"u%d","messageId":"%s-%d-%d-%d",'
            .. '"properties":{"amount":19.99,"plan":"pro"}}',
         n % 1000, tag, thread_no, counter, i
      )
   end
   return wrk.format(nil, nil, nil, '{"batch":[' .. table.concat(items, ",") .. "]}")
end
