import { createRequire } from "node:module";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

interface FakeSocket {
  calls: number;
  busyFor: number;
  send(message: string): Promise<string>;
  receive(): Promise<string>;
}

type RetryWhenBusy = (proto: object, options?: { attempts?: number; delayMs?: number }) => void;
const { retryWhenBusy } = createRequire(resolve("package.json"))("./scripts/zeromq-busy-retry.cjs") as { retryWhenBusy: RetryWhenBusy };

function busyError(): Error {
  return Object.assign(new Error("Socket is blocked by a bind or unbind operation"), { code: "EBUSY" });
}

/** A socket class whose send and receive fail with EBUSY `busyFor` times, then work (as during a bind). */
function fakeSocketClass(): { new (busyFor: number): FakeSocket; prototype: FakeSocket } {
  class Fake {
    calls = 0;
    constructor(public busyFor: number) {}
    async send(message: string): Promise<string> {
      if (++this.calls <= this.busyFor) throw busyError();
      return `sent ${message}`;
    }
    async receive(): Promise<string> {
      if (++this.calls <= this.busyFor) throw busyError();
      return "received";
    }
  }
  return Fake as unknown as { new (busyFor: number): FakeSocket; prototype: FakeSocket };
}

describe("retryWhenBusy (tslab kernel wrapper)", () => {
  it("retries a send or receive made while the socket is binding, then succeeds", async () => {
    const Fake = fakeSocketClass();
    retryWhenBusy(Fake.prototype, { delayMs: 1 });
    const sending = new Fake(3);
    await expect(sending.send("kernel_info_reply")).resolves.toBe("sent kernel_info_reply");
    expect(sending.calls).toBe(4);
    const receiving = new Fake(2);
    await expect(receiving.receive()).resolves.toBe("received");
    expect(receiving.calls).toBe(3);
  });

  it("wraps zeromq's own socket methods (native, read-only but configurable)", () => {
    const proto = {};
    Object.defineProperty(proto, "send", { value: async () => "sent", writable: false, configurable: true });
    retryWhenBusy(proto);
    expect((Object.getOwnPropertyDescriptor(proto, "send")?.value as { retriesWhenBusy?: boolean }).retriesWhenBusy).toBe(true);
  });

  it("keeps a synchronous error synchronous (a send on a closed socket at shutdown), as zeromq throws it", () => {
    const proto = {
      send(): never {
        throw Object.assign(new Error("Socket is closed"), { code: "EBADF" });
      },
    };
    retryWhenBusy(proto);
    expect(() => proto.send()).toThrow(/Socket is closed/);
  });

  it("passes other errors through at once, and gives up after the last attempt", async () => {
    const Fake = fakeSocketClass();
    retryWhenBusy(Fake.prototype, { attempts: 3, delayMs: 1 });
    retryWhenBusy(Fake.prototype, { attempts: 3, delayMs: 1 }); // wrapping twice changes nothing
    const stuck = new Fake(10);
    await expect(stuck.send("x")).rejects.toMatchObject({ code: "EBUSY" });
    expect(stuck.calls).toBe(3);
    const closed = new Fake(0);
    closed.send = async () => {
      closed.calls++;
      throw Object.assign(new Error("Socket is closed"), { code: "EBADF" });
    };
    retryWhenBusy(closed, { delayMs: 1 });
    await expect(closed.send("x")).rejects.toMatchObject({ code: "EBADF" });
    expect(closed.calls).toBe(1);
  });
});
