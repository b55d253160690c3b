/*! Latchkey Login SDK (login1.js): Login with Amazon's `amazon.Login` API for a Latchkey server, as
 * `latchkey.Login` (and `amazon.Login` when the page has none). No dependencies.
 * setClientId(id) · authorize(options, next) · retrieveToken(code, cb) · retrieveProfile([token,] cb) ·
 * refreshToken(cb) (Latchkey addition) · logout() · getClientId() · setUseCookie(bool) · setSiteDomain(domain) */
(function (global) {
  'use strict';
  var script = document.currentScript;
  var base = script ? new URL(script.src).origin : global.location.origin;
  var clientId = null;
  var tokens = { access: null, refresh: null };
  var KEY = 'latchkey.login';
  var useCookie = false;
  var siteDomain = null;
  var lastScope = null;

  function b64url(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function random(n) {
    var a = new Uint8Array(n);
    global.crypto.getRandomValues(a);
    return b64url(a);
  }
  function challengeOf(verifier) {
    return global.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)).then(function (d) {
      return b64url(new Uint8Array(d));
    });
  }
  function query(obj) {
    return Object.keys(obj).filter(function (k) { return obj[k] !== undefined && obj[k] !== null; })
      .map(function (k) { return encodeURIComponent(k) + '=' + encodeURIComponent(obj[k]); }).join('&');
  }
  function parse(s) {
    var out = {};
    new URLSearchParams(s.replace(/^[?#]/, '')).forEach(function (v, k) { out[k] = v; });
    return out;
  }
  function remember(v) { try { global.sessionStorage.setItem(KEY, JSON.stringify(v)); } catch (e) { /* private mode */ } }
  function recall() { try { return JSON.parse(global.sessionStorage.getItem(KEY) || '{}'); } catch (e) { return {}; } }
  /* The cookie contract of LWA's SDK (its reference: setUseCookie "determines whether or not the access token will be
   * written to a cookie", named amazon_Login_accessToken, to make it available to the site's server; setSiteDomain
   * "sets the domain to use for saving cookies", which "must match the origin of the current page" and defaults to
   * the page's own; logout() forgets the cached tokens). Written on the site's page (document.cookie), never on
   * Latchkey's origin. Where LWA's documentation is silent, what sites' server code reads:
   *   amazon_Login_accessToken  the token as it is (Atza|…, cookie-safe), so $_COOKIE / req.cookies give it as is;
   *   amazon_Login_state_cache  encodeURIComponent(JSON) of { access_token, max_age (s), expiration_date (ms since
   *                             the epoch), client_id, scope }: LWA's shape, read as JSON.parse(req.cookies[…]);
   * both Path=/, Max-Age = the token's expires_in, SameSite=Lax, Secure on https pages, not HttpOnly (script-made).
   * No site domain: host-only (the page's host). A site domain that does not cover the page's host would be
   * dropped by the browser; the cookies are then written host-only instead, so the site's server still gets them. */
  var COOKIE_TOKEN = 'amazon_Login_accessToken';
  var COOKIE_STATE = 'amazon_Login_state_cache';
  function cookieAttributes(maxAge) {
    var host = global.location.hostname;
    var domain = siteDomain && String(siteDomain).replace(/^\./, '').toLowerCase();
    var covers = domain && (host === domain || host.slice(-(domain.length + 1)) === '.' + domain);
    return '; Path=/; Max-Age=' + maxAge + (covers ? '; Domain=' + domain : '') + '; SameSite=Lax' +
      (global.location.protocol === 'https:' ? '; Secure' : '');
  }
  function writeCookies(body) {
    if (!useCookie || !body || !body.access_token) { return; }
    var life = Math.max(0, Math.floor(Number(body.expires_in) || 3600));
    var cache = { access_token: body.access_token, max_age: life, expiration_date: Date.now() + life * 1000,
      client_id: clientId, scope: body.scope || lastScope || 'profile' };
    document.cookie = COOKIE_TOKEN + '=' + body.access_token + cookieAttributes(life);
    document.cookie = COOKIE_STATE + '=' + encodeURIComponent(JSON.stringify(cache)) + cookieAttributes(life);
  }
  function clearCookies() {
    [COOKIE_TOKEN, COOKIE_STATE].forEach(function (name) {
      if (document.cookie.indexOf(name + '=') < 0) { return; }
      document.cookie = name + '=' + cookieAttributes(0);
      document.cookie = name + '=; Path=/; Max-Age=0'; // one written host-only before a site domain was set
    });
  }
  function relayUri() { return base + '/sdk/relay/' + encodeURIComponent(clientId); }
  function post(path, form, cb) {
    fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: query(form) })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.access_token) { tokens.access = body.access_token; }
        if (body.refresh_token) { tokens.refresh = body.refresh_token; }
        writeCookies(body);
        cb(body);
      }, function () { cb({ error: 'network_error', error_description: 'Latchkey could not be reached' }); });
  }

  /** What authorize() returns: `status` is queued, in progress or complete; `onComplete(next)` adds a handler. */
  function AuthorizeRequest() {
    this.status = 'queued';
    this._next = [];
  }
  AuthorizeRequest.prototype.onComplete = function (next) {
    if (this.status === 'complete') { deliver(next, this._response); } else if (next) { this._next.push(next); }
    return this;
  };
  function deliver(next, response) {
    if (typeof next === 'function') { next(response); }
    else if (typeof next === 'string') { global.location.href = next + (next.indexOf('?') < 0 ? '?' : '&') + query(response); }
  }
  function complete(req, response) {
    req.status = 'complete';
    req._response = response;
    Object.keys(response).forEach(function (k) { req[k] = response[k]; });
    if (response.access_token) { tokens.access = response.access_token; }
    writeCookies(response);
    req._next.forEach(function (n) { deliver(n, response); });
    req._next = [];
  }

  var Login = {
    setClientId: function (id) { clientId = id; },
    getClientId: function () { return clientId; },
    /** LWA's: true keeps the access token in the amazon_Login_accessToken cookie for the site's server. */
    setUseCookie: function (on) { useCookie = !!on; },
    /** LWA's: the domain the cookies are written for (the page's host or a parent of it, e.g. example.com). */
    setSiteDomain: function (domain) { siteDomain = domain || null; },
    /** Opens Latchkey's sign-in (a popup by default) and reports { code | access_token | error, state }. */
    authorize: function (options, next) {
      options = options || {};
      var req = new AuthorizeRequest();
      if (next) { req.onComplete(next); }
      if (!clientId) { complete(req, { error: 'invalid_request', error_description: 'Call setClientId first' }); return req; }
      var popup = options.popup !== false;
      var responseType = options.response_type || 'token';
      var state = options.state || random(16);
      var scope = Array.isArray(options.scope) ? options.scope.join(' ') : (options.scope || 'profile');
      lastScope = scope;
      var redirectUri = popup ? relayUri() : (typeof next === 'string' ? next : global.location.href.split('#')[0]);
      var params = { client_id: clientId, response_type: responseType, scope: scope, state: state, redirect_uri: redirectUri };
      if (options.scope_data) { params.scope_data = typeof options.scope_data === 'string' ? options.scope_data : JSON.stringify(options.scope_data); }
      if (options.interactive === 'never') { params.prompt = 'none'; }
      if (options.interactive === 'always') { params.prompt = 'login'; }
      var pkce = options.pkce || (responseType === 'code' && options.pkce !== false);
      var verifier = pkce ? random(32) : null;
      // The popup opens now, inside the click, so that blockers allow it; it is sent to Latchkey once ready.
      var win = popup ? global.open('', 'latchkey-login', 'width=480,height=680') : null;
      if (popup && !win) { complete(req, { error: 'popup_blocked', error_description: 'Allow pop-ups for this site', state: state }); return req; }
      req.status = 'in progress';
      (pkce ? challengeOf(verifier) : Promise.resolve(null)).then(function (challenge) {
        if (challenge) { params.code_challenge = challenge; params.code_challenge_method = 'S256'; }
        remember({ verifier: verifier, redirect_uri: redirectUri, state: state });
        var url = base + '/ap/oa?' + query(params);
        if (!popup) { global.location.href = url; return; }
        function onMessage(event) {
          if (event.origin !== base || !event.data || event.data.type !== 'latchkey:authorize') { return; }
          global.removeEventListener('message', onMessage);
          var response = parse(event.data.search || '');
          var fragment = parse(event.data.hash || '');
          Object.keys(fragment).forEach(function (k) { response[k] = fragment[k]; });
          if (response.state !== state) { response = { error: 'invalid_state', error_description: 'The response does not belong to this request' }; }
          if (response.expires_in) { response.expires_in = Number(response.expires_in); }
          complete(req, response);
        }
        global.addEventListener('message', onMessage);
        win.location.href = url;
      });
      return req;
    },
    /** Exchanges a code from authorize() for tokens (PKCE, in the browser). */
    retrieveToken: function (code, callback) {
      var saved = recall();
      post('/auth/o2/token', {
        grant_type: 'authorization_code', code: code, client_id: clientId,
        redirect_uri: saved.redirect_uri, code_verifier: saved.verifier
      }, callback || function () {});
    },
    /** Reads the profile: { success, profile: { CustomerId, Name, PrimaryEmail, PostalCode } }. */
    retrieveProfile: function (token, callback) {
      if (typeof token === 'function') { callback = token; token = null; }
      token = token || tokens.access;
      fetch(base + '/user/profile', { headers: { Authorization: 'Bearer ' + token } })
        .then(function (r) { return r.json(); })
        .then(function (p) {
          if (p.error) { callback({ success: false, error: p.error, error_description: p.error_description }); return; }
          callback({ success: true, profile: { CustomerId: p.user_id, Name: p.name, PrimaryEmail: p.email, PostalCode: p.postal_code } });
        }, function () { callback({ success: false, error: 'network_error' }); });
    },
    /** Latchkey addition: a new access token from the refresh token (public apps with PKCE get one). */
    refreshToken: function (callback) {
      if (!tokens.refresh) { callback({ error: 'invalid_request', error_description: 'No refresh token' }); return; }
      post('/auth/o2/token', { grant_type: 'refresh_token', refresh_token: tokens.refresh, client_id: clientId }, callback);
    },
    /** Forgets the tokens this page holds, and its cookies (the customer stays signed in to Latchkey). */
    logout: function () {
      tokens.access = null;
      tokens.refresh = null;
      clearCookies();
      try { global.sessionStorage.removeItem(KEY); } catch (e) { /* ignore */ }
    }
  };

  global.latchkey = global.latchkey || {};
  global.latchkey.Login = Login;
  if (!global.amazon) { global.amazon = { Login: Login }; }
})(window);
