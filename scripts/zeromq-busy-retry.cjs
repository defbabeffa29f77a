// tslab starts reading its shell socket and answering on iopub before its sockets have finished binding
// (ZmqServer.init starts the receive loops, then binds all five sockets at once). A send or receive issued while a
// bind is in progress fails with EBUSY ("Socket is blocked by a bind or unbind operation"); tslab does not catch it,
// the kernel dies, and Jupyter waits 120 s for a kernel that never answers. It happens when a kernel_info request
// arrives early, more often on a busy machine. EBUSY is raised before anything is sent or received, so trying again
// once the bind is done is safe: this wraps a socket prototype's send and receive to do that.
"use strict";

/**
 * Wraps `proto.send` and `proto.receive` to retry on EBUSY, every `delayMs`, up to `attempts` times. Anything else
 * behaves exactly as before: other errors are thrown (synchronously or as a rejection) just as the original did.
 */
function retryWhenBusy(proto, { attempts = 100, delayMs = 10 } = {}) {
  const busy = (error) => Boolean(error) && error.code === "EBUSY";
  for (const method of ["send", "receive"]) {
    const original = proto[method];
    if (typeof original !== "function" || original.retriesWhenBusy === true) continue;
    const wrapped = function (...args) {
      const attempt = (n) => {
        const again = () => new Promise((resolve) => setTimeout(resolve, delayMs)).then(() => attempt(n + 1));
        let result;
        try {
          result = original.apply(this, args);
        } catch (error) {
          if (busy(error) && n < attempts) return again();
          throw error;
        }
        if (!result || typeof result.then !== "function") return result;
        return result.then(undefined, (error) => {
          if (busy(error) && n < attempts) return again();
          throw error;
        });
      };
      return attempt(1);
    };
    wrapped.retriesWhenBusy = true;
    // zeromq's native prototype methods are not writable, but configurable.
    Object.defineProperty(proto, method, { value: wrapped, writable: true, enumerable: false, configurable: true });
  }
}

module.exports = { retryWhenBusy };
