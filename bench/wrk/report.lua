-- Prepended to every wrk run of the bench: machine-readable results from done().
-- A scenario script may define `counters` (names of per-thread globals) to have them summed.

threads = {}
local thread_count = 0

function setup(thread)
   thread_count = thread_count + 1
   thread:set("thread_id", thread_count)
   table.insert(threads, thread)
end

function done(summary, latency, requests)
   local e = summary.errors
   local parts = {
      string.format('"requests": %d', summary.requests),
      string.format('"duration_us": %d', summary.duration),
      string.format('"bytes": %d', summary.bytes),
      string.format('"errors_connect": %d', e.connect),
      string.format('"errors_read": %d', e.read),
      string.format('"errors_write": %d', e.write),
      string.format('"errors_status": %d', e.status),
      string.format('"errors_timeout": %d', e.timeout),
      string.format('"latency_mean_us": %.1f', latency.mean),
      string.format('"latency_max_us": %d', latency.max),
   }
   for _, p in ipairs({50, 75, 90, 99, 99.9}) do
      table.insert(parts, string.format('"p%s_us": %d', tostring(p), latency:percentile(p)))
   end
   for _, name in ipairs(counters or {}) do
      local total = 0
      for _, thread in ipairs(threads) do
         total = total + (thread:get(name) or 0)
      end
      table.insert(parts, string.format('"%s": %d', name, total))
   end
   io.write("BENCH_JSON {" .. table.concat(parts, ", ") .. "}\n")
end
