// Package insight is what only an expert service can see (issue 19):
// sightings of the same indicators across customers, and the campaigns and
// threat actors the experts track.
//
// # Sightings
//
// When a case involves a file hash, an IP address, a URL or domain, or a
// threat family (directly, or through its alert, incident or device),
// Sightings names the other orgs whose incidents hold the same indicators,
// or whose cases are about them, within Config.Window: "Fabrikam (2
// devices, incident 14, EOD-9)". It is computed from what hunting and
// casework already store (hunting.Service.Sightings, casework's
// CasesAbout), through indexes that start with the indicator, never a
// scan. Indicators on the common list (hunting's guard: seen on many
// devices, or held by many incidents, of one org) never count.
//
// Tenancy: another org's sightings are for experts only. Nothing here
// checks roles (the bot does, and shows sightings only on the expert desk
// and in experts' answers); Known, which describes a subject inside one
// org, reads that org's data only.
//
// # Campaigns
//
// Experts tag cases and incidents of any org with a campaign or actor name
// (Tag), list a campaign across orgs (Campaign) and may share its name
// with the customers (Share). A tagged incident's notification says that
// the threat experts linked it to a campaign they track, and names it once
// it is shared; nothing more (no other org, no count). Tagging an incident
// and sharing a campaign record, in the same transaction, an outbox event on
// the incident's stream (EventIncidentLinked) so that its card is edited;
// tagging a case records EventCaseTagged on the case's stream so that its
// desk card shows the campaign.
package insight
