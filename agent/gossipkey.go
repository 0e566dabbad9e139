package agent

import "github.com/fieldsync/fieldsync/agent/identity"

// rotateGossipKey installs the gossip key a new list carries (point 3).
func (a *Agent) rotateGossipKey(*identity.RevocationList) {}

// gossipEpoch is the list number whose gossip key is in use; 0 for the key
// derived from the deployment secret.
func (a *Agent) gossipEpoch() uint64 { return 0 }
