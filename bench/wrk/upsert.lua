-- POST /v1/contacts upserts with varied, valid Indian mobile numbers.
-- Arguments (after --): existing_lo existing_hi new_lo new_hi existing_percent
--   existing: "9198" .. 8 digits, i in [existing_lo, existing_hi] (seeded contacts, updates)
--   new:      "9199" .. 8 digits, i in [new_lo, new_hi] (almost always new contacts, inserts)

counters = {"created", "updated", "failed"}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local body = '{"phone": "%s", "first_name": "Bench", "tags": ["bench"], "custom_fields": {"k": "v"}}'

function init(args)
   existing_lo = tonumber(args[1])
   existing_hi = tonumber(args[2])
   new_lo = tonumber(args[3])
   new_hi = tonumber(args[4])
   existing_percent = tonumber(args[5])
   created, updated, failed = 0, 0, 0
   math.randomseed(os.time() * 1000 + (thread_id or 0) * 7919)
   for _ = 1, 10 do math.random() end
end

function request()
   local phone
   if math.random(1, 100) <= existing_percent then
      phone = string.format("9198%08d", math.random(existing_lo, existing_hi))
   else
      phone = string.format("9199%08d", math.random(new_lo, new_hi))
   end
   return wrk.format(nil, nil, nil, string.format(body, phone))
end

function response(status, headers, resp_body)
   if status == 201 then
      created = created + 1
   elseif status == 200 then
      updated = updated + 1
   else
      failed = failed + 1
   end
end
