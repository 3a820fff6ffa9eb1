// "Claim with your wallet" on the wallet page: the browser's wallet (EIP-1193, window.ethereum) sends the
// distributor's claim call that GET /api/v1/claims/{address} prepared. The platform never signs for the
// expert. Without a wallet in the browser the buttons stay hidden.
(function () {
  "use strict";
  const provider = window.ethereum;
  if (!provider || typeof provider.request !== "function") {
    return;
  }

  function say(button, text) {
    const status = button.parentElement.querySelector(".claim-status");
    if (status) {
      status.textContent = text;
    }
  }

  async function claim(button) {
    const address = button.dataset.address;
    button.disabled = true;
    try {
      say(button, "Waiting for your wallet…");
      const accounts = await provider.request({ method: "eth_requestAccounts" });
      const from = (accounts || []).find((a) => a.toLowerCase() === address.toLowerCase());
      if (!from) {
        say(button, "Select the account " + address + " in your wallet, then try again.");
        return;
      }
      const response = await fetch(button.dataset.claimUrl, { headers: { Accept: "application/json" } });
      const body = await response.json();
      if (!response.ok) {
        const errors = body.errors || [];
        say(button, "Could not prepare the claim: " + (errors.length ? errors[0].message : response.status));
        return;
      }
      const to = body.distributor || button.dataset.distributor;
      say(button, "Confirm the transaction in your wallet…");
      const hash = await provider.request({
        method: "eth_sendTransaction",
        params: [{ from: from, to: to, data: body.calldata }],
      });
      say(button, "Sent: transaction " + hash + ". It shows here once indexed.");
    } catch (error) {
      say(button, "Not claimed: " + (error && error.message ? error.message : String(error)));
    } finally {
      button.disabled = false;
    }
  }

  document.querySelectorAll("button.claim-with-wallet").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => claim(button));
  });
})();
