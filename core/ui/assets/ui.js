// Tocsin's web UI: enhancements only; every page works without this script.
// Served from /ui/assets/ui.js under a Content-Security-Policy without inline scripts.
(function () {
  'use strict';

  // Regions with data-refresh="URL" reload their content from URL every data-every ms
  // while the page is visible (the incident list).
  document.querySelectorAll('[data-refresh]').forEach(function (region) {
    var every = parseInt(region.getAttribute('data-every') || '5000', 10);
    setInterval(function () {
      if (document.hidden) { return; }
      fetch(region.getAttribute('data-refresh'), { credentials: 'same-origin' })
        .then(function (response) {
          // Signed out meanwhile (revoked token, expired cookie): go where it leads.
          if (response.redirected) { window.location.assign(response.url); return null; }
          if (!response.ok) { throw new Error('refresh answered ' + response.status); }
          return response.text();
        })
        .then(function (html) { if (html !== null) { region.innerHTML = html; } })
        .catch(function () { /* keep what is shown; the next tick tries again */ });
    }, every);
  });

  // A form with data-preview="URL" posts itself to URL as the user types and shows the
  // answer in the element named by data-preview-into (the suppression draft).
  document.querySelectorAll('form[data-preview]').forEach(function (form) {
    var into = document.getElementById(form.getAttribute('data-preview-into'));
    var timer = null;
    var sent = 0;
    var run = function () {
      var mine = ++sent;
      fetch(form.getAttribute('data-preview'), {
        method: 'POST',
        credentials: 'same-origin',
        body: new URLSearchParams(new FormData(form))
      })
        .then(function (response) {
          if (response.redirected) { window.location.assign(response.url); return null; }
          return response.text();
        })
        .then(function (html) { if (html !== null && mine === sent) { into.innerHTML = html; } })
        .catch(function () { /* the Preview button still works */ });
    };
    form.addEventListener('input', function () {
      clearTimeout(timer);
      timer = setTimeout(run, 300);
    });
  });
})();
