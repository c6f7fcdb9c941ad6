/* When the server stops accepting this page's credential (a revoked share link or token, a
   sign-out in another tab), a callback answers 401 and the page would silently stop updating.
   Reload instead: the server then shows the sign-in page or says the link is dead. */
(function () {
  var original = window.fetch;
  var reloading = false;
  window.fetch = function (input) {
    return original.apply(this, arguments).then(function (response) {
      var url = typeof input === "string" ? input : (input && input.url) || "";
      if (response.status === 401 && !reloading && url.indexOf("_dash-") !== -1) {
        reloading = true;
        window.location.reload();
      }
      return response;
    });
  };
})();
