-- wrk script: POST one event per request, as a real client would send it.
--
-- Usage: wrk ... -s bench/post_event.lua URL -- <api key or "-"> [no-key] <run tag>
--
-- Every request carries a fresh idempotency key ("<tag>-<thread>-<n>") and one of 1,000
-- user ids, so the server claims a new key and writes a new row each time instead of
-- answering duplicates. The run tag (the last argument) keeps keys unique across runs
-- against one database. With `no-key` the events carry no idempotency key: the same work
-- as an API that has none (the EventBunker adapter), for comparing with it.

local counter = 0
local tag = "run"
local with_key = true
local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
end

function init(args)
   local key = args[1]
   if #args >= 2 then
      tag = args[#args]
   end
   for i = 2, #args - 1 do
      if args[i] == "no-key" then
         with_key = false
      end
   end
   thread_no = thread_no or 0
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
   if key ~= nil and key ~= "-" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
end

function request()
   counter = counter + 1
   local body
   if with_key then
      body = string.format(
         '{"trigger":"bench","user_id":"u%d","payload":{"amount":19.99,"plan":"pro"},'
            .. '"idempotency_key":"%s-%d-%d"}',
         counter % 1000, tag, thread_no, counter
      )
   else
      body = string.format(
         '{"trigger":"bench","user_id":"u%d","payload":{"amount":19.99,"plan":"pro"}}',
         counter % 1000
      )
   end
   return wrk.format(nil, nil, nil, body)
end
