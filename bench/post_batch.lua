-- wrk script: POST a batch of events per request to /v1/events/batch.
--
-- Usage: wrk ... -s bench/post_batch.lua URL -- <api key> <events per request> <run tag>
--
-- Each event has a fresh idempotency key ("<tag>-<thread>-<request>-<item>") and one of
-- 1,000 user ids, as post_event.lua sends them one by one, so every item claims a new key and
-- writes a new row. The answer says how many items were accepted; done() reports the sum as
-- `x-accepted: N`, which the harness holds against the events it sent (a batch answered 200
-- with rejected items is not a success).

local counter = 0
local tag = "run"
local size = 100
accepted = 0 -- a global: done() reads it from each thread
local threads = {}
local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
   table.insert(threads, thread)
end

function init(args)
   local key = args[1]
   size = tonumber(args[2] or "100")
   if args[3] ~= nil then
      tag = args[3]
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
   local items = {}
   for i = 1, size do
      local n = counter * size + i
      items[i] = string.format(
         '{"trigger":"bench","user_id":"u%d","payload":{"amount":19.99,"plan":"pro"},'
            .. '"idempotency_key":"%s-%d-%d-%d"}',
         n % 1000, tag, thread_no, counter, i
      )
   end
   return wrk.format(nil, nil, nil, '{"events":[' .. table.concat(items, ",") .. "]}")
end

function response(status, headers, body)
   if status == 200 then
      local n = string.match(body, '"accepted"%s*:%s*(%d+)')
      if n ~= nil then
         accepted = accepted + tonumber(n)
      end
   end
end

function done(summary, latency, requests)
   local total = 0
   for _, thread in ipairs(threads) do
      total = total + (thread:get("accepted") or 0)
   end
   io.write(string.format("x-accepted: %d\n", total))
end
