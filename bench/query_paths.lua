-- wrk script: GET a random path from a file, one a line, with a bearer key.
--
-- Usage: wrk ... -s bench/query_paths.lua URL -- <paths file> <api key or "-"> [tag]
--
-- The file holds the paths of one scenario (varying users, triggers, time windows and
-- cursors), drawn once by bench/scenario_query.py; each request takes one at random, so
-- no cache of a single row flatters the figure.

local paths = {}

local next_thread = 0

function setup(thread)
   thread:set("thread_no", next_thread)
   next_thread = next_thread + 1
end

function init(args)
   for line in io.lines(args[1]) do
      if line ~= "" then
         paths[#paths + 1] = line
      end
   end
   if #paths == 0 then
      error("no paths in " .. args[1])
   end
   local key = args[2]
   if key ~= nil and key ~= "-" then
      wrk.headers["Authorization"] = "Bearer " .. key
   end
   math.randomseed(os.time() * 1000 + (thread_no or 0))
end

function request()
   return wrk.format("GET", paths[math.random(#paths)])
end
