-- Argo CD health check for ops.routeopt.dev/OptimizationOperation (routeopt-operator).
-- Install it with argocd-cm.yaml in this directory; tests: health_test.yaml and testdata/.
--
-- The order follows kstatus, which Flux uses, so both tools agree on every state but two: an
-- object without status (kstatus: Current) and RemoteUnavailable (kstatus: InProgress, since it
-- is not Stalled; here Degraded, so an outage shows in the Argo CD UI). See docs/gitops.md.
--   no status, or status.observedGeneration older than metadata.generation -> Progressing
--   Stalled=True                              -> Degraded (failed, cancelled elsewhere, not found, bad credentials,
--                                                a request that cannot be sent, a submit whose answer was lost)
--   Ready=True                                -> Healthy  (succeeded, completed despite cancel, cancelled as requested,
--                                                also before the request of spec.submit was sent)
--   Ready=False, AuthFailed / RequestRejected / RemoteUnavailable -> Degraded
--   anything else (Submitting, Pending, Running, PastExpectedEnd, Cancelling, CancelUnsupported) -> Progressing
-- The message is the Ready condition's message.
-- Argo CD runs this with the base and table libraries only (no string library).
local hs = {}

local function condition(conditions, condType)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == condType then
      return c
    end
  end
  return nil
end

local function messageOf(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.status == nil or (obj.status.observedGeneration == nil and obj.status.conditions == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and observed ~= nil and observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation .. " (status is for generation " .. observed .. ")"
  return hs
end

local ready = condition(obj.status.conditions, "Ready")
local stalled = condition(obj.status.conditions, "Stalled")

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = messageOf(ready, messageOf(stalled, "The operator cannot make progress: " .. (stalled.reason or "Stalled")))
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = messageOf(ready, "Ready")
  return hs
end

if ready ~= nil and ready.status == "False" and
    (ready.reason == "AuthFailed" or ready.reason == "RequestRejected" or ready.reason == "RemoteUnavailable") then
  hs.status = "Degraded"
  hs.message = messageOf(ready, ready.reason)
  return hs
end

hs.status = "Progressing"
hs.message = messageOf(ready, "Waiting for the operator to read the operation")
return hs
