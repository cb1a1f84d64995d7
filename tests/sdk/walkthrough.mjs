// Azure's own Notification Hubs SDK (@azure/notification-hubs 2.1.0), unchanged, against
// pushhubd's REST API: what a device (Listen key) and a backend (full key) do. Run by
// tests/integration/sdk_test.cc, which checks the deliveries at pns-mock afterwards.
//
// Environment: PUSHHUB_FULL and PUSHHUB_LISTEN (connection strings), PUSHHUB_HUB, PUSHHUB_TOKEN_PREFIX
// (APNs tokens are this prefix and two digits), NODE_EXTRA_CA_CERTS (the stack's CA).
// Prints one JSON line of what it did; exits non-zero on the first failed expectation.
import assert from "node:assert/strict";

import {
  NotificationHubsClient,
  createAppleInstallation,
  createAppleNotification,
  createAppleRegistrationDescription,
  createFcmV1TemplateRegistrationDescription,
  createTemplateNotification,
  isRestError,
} from "@azure/notification-hubs";

const hub = process.env.PUSHHUB_HUB;
const backend = new NotificationHubsClient(process.env.PUSHHUB_FULL, hub);
const device = new NotificationHubsClient(process.env.PUSHHUB_LISTEN, hub);
const token = (n) => process.env.PUSHHUB_TOKEN_PREFIX + String(n).padStart(2, "0");
const done = {};

async function refused(promise, statusCode, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(isRestError(e), `${what}: ${e}`);
    assert.equal(e.statusCode, statusCode, `${what}: ${e.message}`);
    return;
  }
  assert.fail(`${what}: expected ${statusCode}, it succeeded`);
}

async function until(what, check) {
  for (let i = 0; i < 300; ++i) {
    const value = await check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`${what}: not within 30 s`);
}

// Devices register themselves with the Listen key: 4 installations, the even ones tagged.
for (let i = 0; i < 4; ++i) {
  const response = await device.createOrUpdateInstallation(
    createAppleInstallation({
      installationId: `sdk-${i}`,
      pushChannel: token(i),
      tags: i % 2 === 0 ? ["likes_hockey"] : ["other"],
      userId: `user-${i}`,
      templates: { alert: { body: '{"aps":{"alert":"$(message)"}}' } },
    }),
  );
  assert.ok(response.trackingId, "a tracking id");
}
const read = await device.getInstallation("sdk-0");
assert.equal(read.installationId, "sdk-0");
assert.equal(read.platform, "apns");
assert.equal(read.pushChannel, token(0));
assert.deepEqual(read.tags, ["likes_hockey"]);
assert.equal(read.templates.alert.body, '{"aps":{"alert":"$(message)"}}');

await device.updateInstallation("sdk-1", [
  { op: "add", path: "/tags", value: "likes_hockey" },
  { op: "remove", path: "/tags/other" },
]);
assert.deepEqual((await device.getInstallation("sdk-1")).tags, ["likes_hockey"]);

await device.createOrUpdateInstallation(
  createAppleInstallation({ installationId: "sdk-gone", pushChannel: token(99) }),
);
await device.deleteInstallation("sdk-gone");
await refused(device.getInstallation("sdk-gone"), 404, "a deleted installation");

// Devices on the registration model, also with the Listen key: an Apple registration, and an
// FCM v1 template under an id reserved first; updated with its ETag, found again by channel.
const apple = await device.createRegistration(
  createAppleRegistrationDescription({ deviceToken: token(20), tags: ["reg_model"] }),
);
assert.match(apple.registrationId, /^\d{19}-\d{19}-1$/);
assert.deepEqual(apple.tags, ["reg_model"]);
assert.equal(apple.deviceToken, token(20).toUpperCase());
const reservedId = await device.createRegistrationId();
const fcm = await device.createOrUpdateRegistration(
  createFcmV1TemplateRegistrationDescription({
    registrationId: reservedId,
    fcmV1RegistrationId: "sdk-fcm-registration",
    bodyTemplate: '{"message":{"notification":{"body":"$(message)"}}}',
    templateName: "main",
    tags: ["reg_model"],
  }),
);
assert.equal(fcm.registrationId, reservedId);
const updated = await device.updateRegistration({ ...fcm, tags: ["reg_model", "updated"] });
assert.notEqual(updated.etag, fcm.etag);
assert.deepEqual((await device.getRegistration(reservedId)).tags, ["reg_model", "updated"]);
await refused(device.updateRegistration({ ...fcm, tags: ["stale"] }), 412, "a stale ETag");
const byChannel = [];
for await (const r of device.listRegistrationsByChannel({ kind: "apple", deviceToken: token(20) })) {
  byChannel.push(r.registrationId);
}
assert.deepEqual(byChannel, [apple.registrationId]);
const gone = await device.createRegistration(
  createAppleRegistrationDescription({ deviceToken: token(98) }),
);
await device.deleteRegistration(gone.registrationId);
await refused(device.getRegistration(gone.registrationId), 404, "a deleted registration");

// Listing every registration, or by tag, takes the full key; pages of one follow the token.
const drain = async (iterator) => {
  const ids = [];
  for await (const r of iterator) ids.push(r.registrationId);
  return ids.sort();
};
await refused(drain(device.listRegistrations()), 403, "listing with the Listen key");
const both = [apple.registrationId, reservedId].sort();
assert.deepEqual(await drain(backend.listRegistrations({ top: 1 })), both);
assert.deepEqual(await drain(backend.listRegistrationsByTag("reg_model")), both);

// A device's key cannot send.
await refused(
  device.sendBroadcastNotification(createAppleNotification({ body: '{"aps":{"alert":"x"}}' })),
  403,
  "a send with the Listen key",
);

// The backend sends: to a tag expression (sdk-0, sdk-1, sdk-2), then a template broadcast.
const tagged = await backend.sendNotification(
  createAppleNotification({
    body: '{"aps":{"alert":"hockey"}}',
    headers: { "apns-priority": "10", "apns-push-type": "alert" },
  }),
  { tagExpression: "likes_hockey && !muted" },
);
assert.match(tagged.notificationId, /^[0-9a-f]{32}$/);
done.tagged = tagged.notificationId;
const details = await until("the tag send's outcome", async () => {
  const d = await backend.getNotificationOutcomeDetails(tagged.notificationId);
  return d.state === "Completed" ? d : null;
});
assert.deepEqual(details.apnsOutcomeCounts, [{ state: "Success", count: 3 }]);

const templated = await backend.sendBroadcastNotification(
  createTemplateNotification({ body: { message: "to everyone" } }),
);
done.templated = templated.notificationId;

// Direct sends, without registrations: one handle, then a batch.
const direct = await backend.sendNotification(
  createAppleNotification({ body: '{"aps":{"alert":"direct"}}' }),
  { deviceHandle: token(10) },
);
done.direct = direct.notificationId;
const batch = await backend.sendNotification(
  createAppleNotification({ body: '{"aps":{"alert":"batch"}}' }),
  { deviceHandle: [token(11), token(12)] },
);
done.batch = batch.notificationId;

// A test send answers with the outcome of each device it reached.
const test = await backend.sendNotification(
  createAppleNotification({ body: '{"aps":{"alert":"test"}}' }),
  { tagExpression: "other", enableTestSend: true },
);
assert.equal(test.state, "DetailedStateAvailable");
assert.equal(test.successCount, 1);
assert.equal(test.failureCount, 0);
assert.equal(test.results.length, 1);
assert.equal(test.results[0].pnsHandle, token(3));
assert.equal(test.results[0].registrationId, "sdk-3");
assert.equal(test.results[0].applicationPlatform, "apple");

// A scheduled send, called off: never delivered.
const later = await backend.scheduleNotification(
  new Date(Date.now() + 3600 * 1000),
  createAppleNotification({ body: '{"aps":{"alert":"later"}}' }),
  { tagExpression: "likes_hockey" },
);
assert.match(later.notificationId, /^[0-9a-f]{32}$/);
await backend.cancelScheduledNotification(later.notificationId);
assert.equal((await backend.getNotificationOutcomeDetails(later.notificationId)).state, "Cancelled");
done.cancelled = later.notificationId;

// A scheduled broadcast a second ahead fires.
const soon = await backend.scheduleBroadcastNotification(
  new Date(Date.now() + 1000),
  createAppleNotification({ body: '{"aps":{"alert":"soon"}}' }),
);
done.scheduled = soon.notificationId;
await until("the scheduled broadcast", async () =>
  (await backend.getNotificationOutcomeDetails(soon.notificationId)).state === "Completed");

console.log(JSON.stringify(done));
