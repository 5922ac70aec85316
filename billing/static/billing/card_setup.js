// The customer's card page: Stripe.js collects the card and confirms the SetupIntent,
// then the browser goes to our return URL, which records the saved card.
(function () {
  "use strict";
  var form = document.getElementById("card-form");
  if (!form || typeof Stripe === "undefined") { return; }
  var stripe = Stripe(form.dataset.publishableKey);
  var elements = stripe.elements();
  var card = elements.create("card");
  card.mount("#card-element");
  var errors = document.getElementById("card-errors");
  var button = document.getElementById("card-submit");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    button.disabled = true;
    errors.textContent = "";
    stripe.confirmCardSetup(form.dataset.clientSecret, { payment_method: { card: card } }).then(function (result) {
      if (result.error) {
        errors.textContent = result.error.message || form.dataset.errorText || "The card could not be saved.";
        button.disabled = false;
        return;
      }
      var id = (result.setupIntent && result.setupIntent.id) || form.dataset.setupIntent;
      window.location.href = form.dataset.returnUrl + "?setup_intent=" + encodeURIComponent(id);
    });
  });
})();
