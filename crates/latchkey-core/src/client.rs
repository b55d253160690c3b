//! What the protocol needs to know about a registered app (security profile, SPEC 1).

/// Whether an app can keep a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientKind {
    /// Has a secret (a server-side app).
    #[default]
    Confidential,
    /// Has no secret and authenticates with PKCE only (mobile, single-page, devices).
    Public,
}

/// Something an app opts into; every one is off by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Implicit grant (`response_type=token`).
    Implicit,
    /// PKCE `plain` (and LWA's default-to-plain): for LWA compatibility; confidential apps only.
    PlainPkce,
    /// Code-based linking for devices.
    Device,
    /// The `client_credentials` grant.
    ClientCredentials,
    /// A development app: it may register `http://localhost` return URLs and origins.
    Development,
    /// LWA-style reusable refresh tokens (SPEC 2.2): not rotated, valid until revoked. Confidential apps only.
    ReusableRefresh,
}

impl Feature {
    /// Every feature, in the order they are listed.
    pub const ALL: [Feature; 6] = [
        Feature::Implicit,
        Feature::PlainPkce,
        Feature::Device,
        Feature::ClientCredentials,
        Feature::Development,
        Feature::ReusableRefresh,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of features an app opted into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Features(u8);

impl Features {
    /// No feature.
    pub const NONE: Features = Features(0);

    pub fn contains(self, f: Feature) -> bool {
        self.0 & f.bit() != 0
    }

    pub fn insert(&mut self, f: Feature) {
        self.0 |= f.bit();
    }

    pub fn remove(&mut self, f: Feature) {
        self.0 &= !f.bit();
    }

    /// Turns `f` on or off.
    pub fn set(&mut self, f: Feature, on: bool) {
        if on {
            self.insert(f);
        } else {
            self.remove(f);
        }
    }

    /// These features and `f`.
    #[must_use]
    pub fn with(mut self, f: Feature) -> Features {
        self.insert(f);
        self
    }

    /// The features in the set, in [`Feature::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = Feature> {
        Feature::ALL.into_iter().filter(move |f| self.contains(*f))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Feature> for Features {
    fn from_iter<I: IntoIterator<Item = Feature>>(iter: I) -> Features {
        let mut set = Features::NONE;
        for f in iter {
            set.insert(f);
        }
        set
    }
}

/// The settings of a security profile that protocol decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPolicy {
    pub client_id: String,
    /// Confidential apps have a secret; public apps authenticate with PKCE only.
    pub kind: ClientKind,
    /// Allowed return URLs, exact strings.
    pub redirect_uris: Vec<String>,
    /// What the app opted into.
    pub features: Features,
}

impl ClientPolicy {
    pub fn is_confidential(&self) -> bool {
        self.kind == ClientKind::Confidential
    }

    /// Whether the app opted into `f`.
    pub fn allows(&self, f: Feature) -> bool {
        self.features.contains(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_feature_is_its_own_member_of_the_set() {
        for f in Feature::ALL {
            let one = Features::NONE.with(f);
            assert_eq!(one.iter().collect::<Vec<_>>(), vec![f]);
            for other in Feature::ALL {
                assert_eq!(one.contains(other), other == f, "{f:?} {other:?}");
            }
            let mut all: Features = Feature::ALL.into_iter().collect();
            all.remove(f);
            assert!(!all.contains(f) && all.iter().count() == Feature::ALL.len() - 1);
            all.set(f, true);
            assert!(all.contains(f));
        }
        assert!(Features::default().is_empty());
    }
}
