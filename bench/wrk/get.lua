-- wrk: GET with the access token in the x-amz-access-token header (TOKEN).
wrk.headers["x-amz-access-token"] = os.getenv("TOKEN")
