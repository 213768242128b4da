//! Azure regions: the names `az account list-locations` shows for the public cloud. A
//! resource's `location` must be one of them, given as a name (`westus`) or a display name
//! (`West US`), in any case; it is stored as the name.

use crate::error::{ArmError, ErrorCode};

/// The public cloud's physical regions, as `az account list-locations` names them.
pub const REGIONS: &[&str] = &[
    "australiacentral",
    "australiacentral2",
    "australiaeast",
    "australiasoutheast",
    "austriaeast",
    "belgiumcentral",
    "brazilsouth",
    "brazilsoutheast",
    "canadacentral",
    "canadaeast",
    "centralindia",
    "centralus",
    "centraluseuap",
    "chilecentral",
    "denmarkeast",
    "eastasia",
    "eastus",
    "eastus2",
    "eastus2euap",
    "francecentral",
    "francesouth",
    "germanynorth",
    "germanywestcentral",
    "indonesiacentral",
    "israelcentral",
    "italynorth",
    "japaneast",
    "japanwest",
    "jioindiacentral",
    "jioindiawest",
    "koreacentral",
    "koreasouth",
    "malaysiawest",
    "mexicocentral",
    "newzealandnorth",
    "northcentralus",
    "northeurope",
    "norwayeast",
    "norwaywest",
    "polandcentral",
    "qatarcentral",
    "southafricanorth",
    "southafricawest",
    "southcentralus",
    "southeastasia",
    "southindia",
    "spaincentral",
    "swedencentral",
    "switzerlandnorth",
    "switzerlandwest",
    "uaecentral",
    "uaenorth",
    "uksouth",
    "ukwest",
    "westcentralus",
    "westeurope",
    "westindia",
    "westus",
    "westus2",
    "westus3",
];

/// A location's name: `West US` → `westus`.
pub fn normalize(location: &str) -> String {
    location.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

/// The region a `location` value names, or ARM's 400: `LocationRequired` when it is empty,
/// `InvalidLocation` when it names no region.
pub fn parse(location: &str) -> Result<String, ArmError> {
    let name = normalize(location);
    if name.is_empty() {
        return Err(ArmError::new(
            ErrorCode::LocationRequired,
            "The location property is required for this definition.",
        )
        .with_target("location"));
    }
    if !REGIONS.contains(&name.as_str()) {
        return Err(ArmError::new(ErrorCode::InvalidLocation,
            format!(
                "The provided location '{location}' is not available for this resource. List the available regions with 'az account list-locations'."
            ),
        )
        .with_target("location"));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_named_or_displayed_in_any_case() {
        assert_eq!(parse("West US").unwrap(), "westus");
        assert_eq!(parse("CENTRALUS").unwrap(), "centralus");
        assert_eq!(parse(" ").unwrap_err().code, ErrorCode::LocationRequired);
        assert_eq!(parse("mars").unwrap_err().code, ErrorCode::InvalidLocation);
        assert_eq!(parse("westus<script>").unwrap_err().code, ErrorCode::InvalidLocation);
        assert!(REGIONS.windows(2).all(|pair| pair[0] < pair[1]), "sorted, no duplicates");
    }
}
