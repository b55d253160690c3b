/* Latchkey's popup relay: hands the authorization response to the page that opened the popup, but only if that
 * page is on one of the app's allowed origins (postMessage delivers to a matching target origin only). */
(function () {
  'use strict';
  var meta = document.querySelector('meta[name="latchkey-origins"]');
  var origins = ((meta && meta.getAttribute('content')) || '').split(' ').filter(Boolean);
  var message = { type: 'latchkey:authorize', search: window.location.search, hash: window.location.hash };
  if (window.opener) {
    origins.forEach(function (origin) {
      try { window.opener.postMessage(message, origin); } catch (e) { /* another origin */ }
    });
    window.close();
  }
})();
