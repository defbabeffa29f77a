// tslab starts reading its shell socket and answering on iopub before its sockets have finished binding
// (ZmqServer.init starts the receive loops, then binds all five sockets at once). A send or receive issued while a
// bind is in progress fails with EBUSY ("Socket is blocked by a bind or unbind operation"); tslab does not catch it,
// the kernel dies, and Jupyter waits 120 s for a kernel that never answers. It happens when a kernel_info request
// arrives early, more often on a busy machine. EBUSY is raised before anything is sent or received, so trying again
// once the bind is done is safe: this wraps a socket prototype's send and receive to do that.
"use strict";

/** Wraps `proto.send` and `proto.receive` to retry on EBUSY, every `delayMs`, up to `attempts` times. */
function retryWhenBusy(proto, { attempts = 100, delayMs = 10 } = {}) {
  for (const method of ["send", "receive"]) {
    const original = proto[method];
    if (typeof original !== "function" || original.retriesWhenBusy === true) continue;
    const wrapped = async function (...args) {
      for (let attempt = 1; ; attempt++) {
        try {
          return await original.apply(this, args);
        } catch (error) {
          if (!error || error.code !== "EBUSY" || attempt >= attempts) throw error;
          await new Promise((resolve) => setTimeout(resolve, delayMs));
        }
      }
    };
    wrapped.retriesWhenBusy = true;
    // zeromq's native prototype methods are not writable, but configurable.
    Object.defineProperty(proto, method, { value: wrapped, writable: true, enumerable: false, configurable: true });
  }
}

module.exports = { retryWhenBusy };
