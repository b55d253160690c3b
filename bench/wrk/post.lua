-- wrk: POST a fixed form body (BODY) with a form content type, and count non-2xx answers.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local bad = 0
response = function(status) if status >= 300 then bad = bad + 1 end end
done = function() end
