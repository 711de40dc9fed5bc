//! The FHIR records the gateway serves: a set of FHIR R4 resources held in memory, indexed for reads by
//! type and id and for searches by type and patient, and the synthetic dataset Custodia ships.
//!
//! Loading checks what the index relies on (each resource is a JSON object with a resource type and a
//! FHIR id, unique per type) and caps what a file can make it allocate. It does not validate resources
//! against FHIR's structure definitions: `tests/fhir/validate_dataset.py` does that for the shipped files.
//!
//! The synthetic dataset ([`Dataset::synthetic`]) is three patients' records, coded with SNOMED CT, LOINC,
//! RxNorm, CVX and HL7 terminology, some labelled sensitive in `meta.security` as a hospital would label
//! them. It is generated here, with fixed dates, and shipped as files in `crates/custodia-gateway/dataset/`
//! (one Bundle per patient), which a test keeps identical to it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Value, json};

/// The largest dataset file [`Dataset::load`] reads.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;
/// The most resources a dataset may hold.
pub const MAX_RESOURCES: usize = 1_000_000;
/// The file [`Dataset::write`] puts resources that belong to no patient in.
pub const SHARED_FILE_STEM: &str = "shared";

/// Where a resource came from, for error messages: a file or the list given to
/// [`Dataset::from_resources`], and its position there (a Bundle entry or a list index, from 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Option<PathBuf>,
    pub index: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.index) {
            (Some(file), Some(index)) => write!(f, "{}, entry {index}", file.display()),
            (Some(file), None) => write!(f, "{}", file.display()),
            (None, Some(index)) => write!(f, "resource {index}"),
            (None, None) => f.write_str("the dataset"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{at}: {why}")]
    BadResource { at: Location, why: String },
    #[error("{at}: {resource_type}/{id} appears more than once")]
    Duplicate { at: Location, resource_type: String, id: String },
    #[error("{} is {size} bytes; a dataset file may be at most {MAX_FILE_BYTES}", .path.display())]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{at}: a dataset may hold at most {MAX_RESOURCES} resources")]
    TooMany { at: Location },
}

/// Whether `id` is a FHIR id: 1 to 64 of `A-Z a-z 0-9 - .`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Whether `name` has the form of a FHIR resource type: an ASCII capital, then letters and digits.
fn is_resource_type(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_uppercase()) && name.len() <= 64 && bytes.all(|b| b.is_ascii_alphanumeric())
}

/// The Patient id a resource belongs to: a Patient's own id, or the id in its `subject.reference` or, failing
/// that, `patient.reference`, of the form `Patient/<id>` (a version, `Patient/<id>/_history/<v>`, is
/// ignored). `None` when the resource names no patient, or names one by a reference of another form.
pub fn patient_of(resource: &Value) -> Option<&str> {
    patient_at(resource, None)
}

/// [`patient_of`] for a resource served by the FHIR server at `base`, whose absolute references to its
/// own Patients (`{base}/Patient/<id>`) count as well; one to another server's Patient does not.
pub fn patient_at<'a>(resource: &'a Value, base: Option<&str>) -> Option<&'a str> {
    if resource.get("resourceType").and_then(Value::as_str) == Some("Patient") {
        return resource.get("id").and_then(Value::as_str).filter(|id| is_valid_id(id));
    }
    ["subject", "patient"].into_iter().find_map(|field| {
        let reference = resource.get(field)?.get("reference")?.as_str()?;
        let relative = match base.and_then(|b| reference.strip_prefix(b.trim_end_matches('/'))) {
            Some(rest) => rest.strip_prefix('/')?,
            None => reference,
        };
        let id = relative.strip_prefix("Patient/")?;
        let id = id.split_once("/_history/").map_or(id, |(id, _)| id);
        is_valid_id(id).then_some(id)
    })
}

/// The resources of one type.
#[derive(Clone, Default)]
struct TypeIndex {
    by_id: HashMap<String, Arc<Value>>,
    /// Every resource of the type, by id.
    all: Vec<Arc<Value>>,
    /// The resources of each patient, by id.
    by_patient: HashMap<String, Vec<Arc<Value>>>,
}

/// A set of FHIR resources indexed for reads (type and id) and searches (type and patient).
///
/// Resources are shared (`Arc`), so cloning a dataset or holding a resource past a search is cheap.
#[derive(Clone, Default)]
pub struct Dataset {
    types: HashMap<String, TypeIndex>,
    /// The ids of the Patient resources, sorted.
    patients: Vec<String>,
    len: usize,
}

impl fmt::Debug for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataset")
            .field("resources", &self.len)
            .field("patients", &self.patients.len())
            .field("types", &self.types.len())
            .finish()
    }
}

fn id_of(resource: &Value) -> &str {
    resource.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// Checks and indexes resources one at a time, then sorts the indexes.
struct Builder {
    types: HashMap<String, TypeIndex>,
    len: usize,
    limit: usize,
}

impl Builder {
    fn new(limit: usize) -> Builder {
        Builder { types: HashMap::new(), len: 0, limit }
    }

    fn add(&mut self, resource: Value, at: Location) -> Result<(), DatasetError> {
        if self.len >= self.limit {
            return Err(DatasetError::TooMany { at });
        }
        let bad = |why: &str| DatasetError::BadResource { at: at.clone(), why: why.to_owned() };
        let Value::Object(object) = &resource else {
            return Err(bad("a resource must be a JSON object"));
        };
        let resource_type = match object.get("resourceType") {
            Some(Value::String(t)) if is_resource_type(t) => t.clone(),
            Some(Value::String(_)) => return Err(bad("resourceType is not a FHIR resource type name")),
            _ => return Err(bad("no resourceType")),
        };
        let id = match object.get("id") {
            Some(Value::String(id)) if is_valid_id(id) => id.clone(),
            Some(_) => return Err(bad("id is not a FHIR id (1 to 64 of A-Z, a-z, 0-9, '-' and '.')")),
            None => return Err(bad("no id")),
        };
        let patient = patient_of(&resource).map(str::to_owned);
        let index = self.types.entry(resource_type.clone()).or_default();
        if index.by_id.contains_key(&id) {
            return Err(DatasetError::Duplicate { at, resource_type, id });
        }
        let resource = Arc::new(resource);
        if let Some(patient) = patient {
            index.by_patient.entry(patient).or_default().push(Arc::clone(&resource));
        }
        index.all.push(Arc::clone(&resource));
        index.by_id.insert(id, resource);
        self.len += 1;
        Ok(())
    }

    fn finish(mut self) -> Dataset {
        let by_id = |a: &Arc<Value>, b: &Arc<Value>| id_of(a).cmp(id_of(b));
        for index in self.types.values_mut() {
            index.all.sort_by(by_id);
            for resources in index.by_patient.values_mut() {
                resources.sort_by(by_id);
            }
        }
        let mut patients: Vec<String> =
            self.types.get("Patient").map(|index| index.by_id.keys().cloned().collect()).unwrap_or_default();
        patients.sort();
        Dataset { types: self.types, patients, len: self.len }
    }
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
fn read_capped(path: &Path) -> Result<Vec<u8>, DatasetError> {
    let io = |source| DatasetError::Io { path: path.to_owned(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    if size > MAX_FILE_BYTES {
        return Err(DatasetError::TooLarge { path: path.to_owned(), size });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The file may have grown since its size was read: read no more than the cap allows.
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > MAX_FILE_BYTES {
        return Err(DatasetError::TooLarge { path: path.to_owned(), size: read });
    }
    Ok(bytes)
}

/// The `*.json` files in `dir`, sorted by name.
fn json_files(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_owned(), source };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

impl Dataset {
    /// The shipped synthetic dataset: the same resources as the files in `crates/custodia-gateway/dataset/`.
    pub fn synthetic() -> Dataset {
        Dataset::from_resources(synthetic::resources())
            .expect("the synthetic resources are well formed and their ids unique (the tests build them)")
    }

    /// Indexes `resources`, checking that each is a JSON object with a `resourceType` and an `id` (a FHIR
    /// id: 1 to 64 of `A-Z a-z 0-9 - .`), unique per type.
    pub fn from_resources(resources: Vec<Value>) -> Result<Dataset, DatasetError> {
        let mut builder = Builder::new(MAX_RESOURCES);
        for (index, resource) in resources.into_iter().enumerate() {
            builder.add(resource, Location { file: None, index: Some(index) })?;
        }
        Ok(builder.finish())
    }

    /// Reads every `*.json` file in `dir`, in order of name. A file holding a Bundle contributes its
    /// entries' resources; any other file is one resource. A file may be at most [`MAX_FILE_BYTES`], and
    /// the dataset at most [`MAX_RESOURCES`] resources; errors name the file (and the entry).
    pub fn load(dir: &Path) -> Result<Dataset, DatasetError> {
        Dataset::load_with_limit(dir, MAX_RESOURCES)
    }

    fn load_with_limit(dir: &Path, limit: usize) -> Result<Dataset, DatasetError> {
        let mut builder = Builder::new(limit);
        for path in json_files(dir)? {
            let bytes = read_capped(&path)?;
            let value: Value =
                serde_json::from_slice(&bytes).map_err(|source| DatasetError::Json { path: path.clone(), source })?;
            drop(bytes);
            let whole = Location { file: Some(path.clone()), index: None };
            let mut bundle = match value {
                Value::Object(object) if object.get("resourceType").and_then(Value::as_str) == Some("Bundle") => object,
                resource => {
                    builder.add(resource, whole)?;
                    continue;
                }
            };
            let entries = match bundle.remove("entry") {
                None => Vec::new(),
                Some(Value::Array(entries)) => entries,
                Some(_) => {
                    let why = "the Bundle's entry is not an array".into();
                    return Err(DatasetError::BadResource { at: whole, why });
                }
            };
            for (index, entry) in entries.into_iter().enumerate() {
                let at = Location { file: Some(path.clone()), index: Some(index) };
                match entry {
                    Value::Object(mut entry) => match entry.remove("resource") {
                        Some(resource) => builder.add(resource, at)?,
                        None => return Err(DatasetError::BadResource { at, why: "the entry has no resource".into() }),
                    },
                    _ => return Err(DatasetError::BadResource { at, why: "the entry is not a JSON object".into() }),
                }
            }
        }
        Ok(builder.finish())
    }

    /// Writes one `collection` Bundle per patient to `dir` (created if missing) as `<patient id>.json`,
    /// and the resources that belong to no patient, if any, to `shared.json`: pretty-printed, the Patient
    /// first, then the other resources by type and id, each object's `resourceType`, `id` and `meta` first
    /// and its other members sorted, so the same dataset always writes the same bytes. Other files in
    /// `dir` are left alone.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let mut files: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        let mut types = self.resource_types();
        types.sort_by_key(|t| (*t != "Patient", *t));
        for resource_type in types {
            for resource in self.search(resource_type, None) {
                let stem = patient_of(resource).unwrap_or(SHARED_FILE_STEM);
                files.entry(stem).or_default().push(resource);
            }
        }
        std::fs::create_dir_all(dir)?;
        for (stem, resources) in files {
            let entries: Vec<Value> = resources.into_iter().map(|r| json!({ "resource": r })).collect();
            let bundle = json!({ "resourceType": "Bundle", "id": stem, "type": "collection", "entry": entries });
            let mut text = serde_json::to_string_pretty(&FhirOrder(&bundle)).map_err(std::io::Error::other)?;
            text.push('\n');
            std::fs::write(dir.join(format!("{stem}.json")), text)?;
        }
        Ok(())
    }

    /// The resource `resource_type`/`id`.
    pub fn read(&self, resource_type: &str, id: &str) -> Option<&Arc<Value>> {
        self.types.get(resource_type)?.by_id.get(id)
    }

    /// Every resource of `resource_type` that belongs to `patient` (a Patient id; see [`patient_of`]), or
    /// with `patient` `None` every resource of that type, in order of id.
    pub fn search(&self, resource_type: &str, patient: Option<&str>) -> Vec<&Arc<Value>> {
        let Some(index) = self.types.get(resource_type) else {
            return Vec::new();
        };
        match patient {
            None => index.all.iter().collect(),
            Some(patient) => index.by_patient.get(patient).map(|r| r.iter().collect()).unwrap_or_default(),
        }
    }

    /// The ids of the Patient resources, sorted.
    pub fn patient_ids(&self) -> Vec<&str> {
        self.patients.iter().map(String::as_str).collect()
    }

    /// The resource types present, sorted.
    pub fn resource_types(&self) -> Vec<&str> {
        let mut types: Vec<&str> = self.types.keys().map(String::as_str).collect();
        types.sort_unstable();
        types
    }

    /// How many resources the dataset holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Serialises JSON with each object's `resourceType`, `id` and `meta` first and its other members sorted
/// by name, as FHIR's examples read, and the same whichever map type serde_json was built with.
struct FhirOrder<'a>(&'a Value);

impl Serialize for FhirOrder<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(object) => {
                let rank = |key: &str| match key {
                    "resourceType" => 0,
                    "id" => 1,
                    "meta" => 2,
                    _ => 3,
                };
                let mut members: Vec<(&String, &Value)> = object.iter().collect();
                members.sort_by(|(a, _), (b, _)| (rank(a), a).cmp(&(rank(b), b)));
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    map.serialize_entry(key, &FhirOrder(value))?;
                }
                map.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(FhirOrder)),
            other => other.serialize(serializer),
        }
    }
}

/// The synthetic records: three patients of a fictional hospital, each with allergies, medications,
/// conditions, laboratory results (blood type included), vital signs, an immunization, a laboratory and a
/// radiology report and a visit note, plus records a hospital labels sensitive.
///
/// Nothing here is a real person. Ordinary records never mention what a sensitive one says, nor refer to
/// it, so withholding the sensitive ones withholds the information.
mod synthetic {
    use custodia_core::labels::SensitivityLabel;
    use serde_json::{Value, json};

    const SNOMED: &str = "http://snomed.info/sct";
    const LOINC: &str = "http://loinc.org";
    const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    const CVX: &str = "http://hl7.org/fhir/sid/cvx";
    const UCUM: &str = "http://unitsofmeasure.org";
    const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
    const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
    const DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
    const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
    const CONDITION_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
    const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
    const ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
    const ALLERGY_VERIFICATION: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
    const MEDICATION_REQUEST_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-category";
    const IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    const ACT_SITE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActSite";
    const ROUTE: &str = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration";
    const DOCUMENT_CATEGORY: &str = "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
    const MRN_SYSTEM: &str = "https://northgate-hospital.example/fhir/mrn";
    const LABORATORY: &str = "Northgate Hospital Pathology";
    const RADIOLOGIST: &str = "Dr Hannah Kowalski, Radiology";

    /// A code: (code, display).
    type Code = (&'static str, &'static str);
    /// A LOINC test: (code, display, the short name people use).
    type Test = (&'static str, &'static str, &'static str);
    /// A UCUM unit: (as printed, UCUM code).
    type Unit = (&'static str, &'static str);

    const PERCENT: Unit = ("%", "%");
    const MG_PER_DL: Unit = ("mg/dL", "mg/dL");
    const G_PER_DL: Unit = ("g/dL", "g/dL");
    const NG_PER_ML: Unit = ("ng/mL", "ng/mL");
    const MIU_PER_L: Unit = ("mIU/L", "m[IU]/L");

    const HBA1C: Test = ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "HbA1c");
    const CREATININE: Test = ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "Creatinine");
    const HAEMOGLOBIN: Test = ("718-7", "Hemoglobin [Mass/volume] in Blood", "Haemoglobin");
    const LDL: Test = ("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "LDL cholesterol");
    const FERRITIN: Test = ("2276-4", "Ferritin [Mass/volume] in Serum or Plasma", "Ferritin");
    const TSH: Test = ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "TSH");
    const HIV_SCREEN: Test = (
        "56888-1",
        "HIV 1+2 Ab+HIV1 p24 Ag [Presence] in Serum or Plasma by Immunoassay",
        "HIV antigen/antibody screen",
    );
    const CHLAMYDIA_NAAT: Test =
        ("43304-5", "Chlamydia trachomatis rRNA [Presence] in Specimen by NAA with probe detection", "Chlamydia NAAT");
    const NEGATIVE: Code = ("260385009", "Negative");

    struct Person {
        id: &'static str,
        mrn: &'static str,
        given: &'static str,
        family: &'static str,
        gender: &'static str,
        birth_date: &'static str,
        phone: &'static str,
        address: (&'static str, &'static str, &'static str),
        blood_group: Code,
        /// The day of the visit the laboratory results, vital signs, reports and visit note come from.
        visit: &'static str,
        doctor: &'static str,
    }

    const ALICE: Person = Person {
        id: "p1",
        mrn: "NGH-100234",
        given: "Alice",
        family: "Martin",
        gender: "female",
        birth_date: "1984-03-12",
        phone: "+44 7700 900123",
        address: ("14 Marlowe Road", "Cambridge", "CB1 3QT"),
        blood_group: ("278149003", "Blood group A Rh(D) positive"),
        visit: "2025-01-14",
        doctor: "Dr Priya Shah",
    };

    const BRUNO: Person = Person {
        id: "p2",
        mrn: "NGH-100871",
        given: "Bruno",
        family: "Costa",
        gender: "male",
        birth_date: "1957-11-02",
        phone: "+44 7700 900456",
        address: ("3 Orchard Close", "Ely", "CB7 4DL"),
        blood_group: ("278147001", "Blood group O Rh(D) positive"),
        visit: "2025-02-03",
        doctor: "Dr Samuel Adeyemi",
    };

    const AMARA: Person = Person {
        id: "p3",
        mrn: "NGH-101502",
        given: "Amara",
        family: "Okafor",
        gender: "female",
        birth_date: "1996-07-21",
        phone: "+44 7700 900789",
        address: ("Flat 2, 57 Mill Lane", "Cambridge", "CB2 1RX"),
        blood_group: ("278153001", "Blood group B Rh(D) negative"),
        visit: "2025-03-11",
        doctor: "Dr Priya Shah",
    };

    /// Every synthetic resource.
    pub(super) fn resources() -> Vec<Value> {
        [alice(), bruno(), amara()].concat()
    }

    fn alice() -> Vec<Value> {
        let p = &ALICE;
        vec![
            patient(p),
            allergy(
                p,
                1,
                ("91936005", "Allergy to penicillin"),
                "medication",
                "high",
                ("247472004", "Hives"),
                "2009-05-20",
            ),
            allergy(
                p,
                2,
                ("91935009", "Allergy to peanuts"),
                "food",
                "high",
                ("39579001", "Anaphylaxis"),
                "1992-08-02",
            ),
            condition(
                p,
                "condition-diabetes",
                ("44054006", "Diabetes mellitus type 2"),
                "Type 2 diabetes",
                "2019-06-04",
            ),
            condition(
                p,
                "condition-hypertension",
                ("59621000", "Essential hypertension"),
                "High blood pressure",
                "2021-02-15",
            ),
            medication(
                p,
                "metformin",
                ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet"),
                "Metformin 500 mg modified-release tablet",
                "500 mg by mouth twice daily with meals",
                "2019-06-10",
                Some("condition-diabetes"),
            ),
            medication(
                p,
                "lisinopril",
                ("314076", "lisinopril 10 MG Oral Tablet"),
                "Lisinopril 10 mg tablet",
                "10 mg by mouth once daily",
                "2021-03-01",
                Some("condition-hypertension"),
            ),
            lab(p, "hba1c", HBA1C, 7.4, PERCENT, (Some(4.0), Some(5.6))),
            lab(p, "creatinine", CREATININE, 0.86, MG_PER_DL, (Some(0.59), Some(1.04))),
            lab(p, "haemoglobin", HAEMOGLOBIN, 13.2, G_PER_DL, (Some(12.0), Some(15.5))),
            lab(p, "ldl", LDL, 118.0, MG_PER_DL, (None, Some(100.0))),
            blood_type(p),
            blood_pressure(p, 138, 88),
            heart_rate(p, 76),
            body_weight(p, 72.5),
            immunization(
                p,
                "influenza",
                ("140", "Influenza, seasonal, injectable, preservative free"),
                "2024-10-08",
                "FL2417A",
            ),
            lab_report(
                p,
                &["hba1c", "creatinine", "haemoglobin", "ldl"],
                "HbA1c above target but improved since the last test; LDL cholesterol above target. Kidney function and haemoglobin normal.",
            ),
            imaging(
                p,
                "2024-06-03",
                "Lungs clear. Heart size normal. No pleural effusion or pneumothorax.",
                "No acute cardiopulmonary abnormality.",
                ("281900007", "No abnormality detected"),
            ),
            note(
                p,
                "visit-note",
                ("11506-3", "Progress note"),
                "2025-01-14T10:20:00Z",
                p.doctor,
                "Diabetes and blood pressure review",
                "Diabetes and blood pressure review, 14 January 2025.\n\n\
                 Alice takes metformin and lisinopril as prescribed. No episodes of hypoglycaemia. Home blood \
                 pressure readings average 135/85 mmHg.\n\n\
                 HbA1c 7.4 % (7.9 % in July). Creatinine normal. LDL cholesterol 118 mg/dL. Blood pressure \
                 today 138/88 mmHg, weight 72.5 kg.\n\n\
                 Plan: continue metformin 500 mg twice daily and lisinopril 10 mg daily; dietitian referral; \
                 discuss a statin at the next visit; repeat HbA1c in three months; annual retinal screening \
                 booked.\n",
            ),
            // Sensitive: a psychiatry note, an HIV test, a substance use disorder.
            labelled(
                note(
                    p,
                    "psy-note",
                    ("28627-8", "Psychiatry Progress note"),
                    "2024-11-05T15:40:00Z",
                    "Dr Tomás Ruiz, Psychiatry",
                    "Psychiatry follow-up",
                    "Psychiatry follow-up, 5 November 2024.\n\n\
                     Alice attends for review of anxiety and low mood following a bereavement in the spring. \
                     Sleep is better and she is back at work full time. No thoughts of self-harm.\n\n\
                     Mental state: calm, good rapport, mood 'better', reactive affect, no psychotic features.\n\n\
                     Plan: continue weekly cognitive behavioural therapy; review in eight weeks; crisis line \
                     details given.\n",
                ),
                &["PSY"],
            ),
            labelled(coded_lab(p, "hiv-result", HIV_SCREEN, NEGATIVE, "2024-09-20"), &["HIV"]),
            labelled(
                condition(p, "sud-condition", ("7200002", "Alcoholism"), "Alcohol use disorder", "2022-09-01"),
                &["ETH", "ETHUD"],
            ),
        ]
    }

    fn bruno() -> Vec<Value> {
        let p = &BRUNO;
        vec![
            patient(p),
            allergy(
                p,
                1,
                ("424213003", "Allergy to bee venom"),
                "environment",
                "high",
                ("39579001", "Anaphylaxis"),
                "1998-07-14",
            ),
            condition(p, "condition-copd", ("13645005", "Chronic obstructive lung disease"), "COPD", "2016-01-19"),
            condition(p, "condition-hyperlipidaemia", ("55822004", "Hyperlipidemia"), "High cholesterol", "2012-10-03"),
            medication(
                p,
                "salbutamol",
                ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
                "Salbutamol 100 micrograms/dose inhaler",
                "2 puffs inhaled when needed for breathlessness, up to 4 times a day",
                "2016-01-19",
                Some("condition-copd"),
            ),
            medication(
                p,
                "atorvastatin",
                ("259255", "atorvastatin 80 MG Oral Tablet"),
                "Atorvastatin 80 mg tablet",
                "80 mg by mouth once daily at night",
                "2012-10-10",
                Some("condition-hyperlipidaemia"),
            ),
            lab(p, "hba1c", HBA1C, 5.6, PERCENT, (Some(4.0), Some(5.6))),
            lab(p, "creatinine", CREATININE, 1.21, MG_PER_DL, (Some(0.74), Some(1.35))),
            lab(p, "haemoglobin", HAEMOGLOBIN, 14.6, G_PER_DL, (Some(13.2), Some(16.6))),
            lab(p, "ldl", LDL, 92.0, MG_PER_DL, (None, Some(100.0))),
            blood_type(p),
            blood_pressure(p, 132, 84),
            heart_rate(p, 88),
            body_weight(p, 84.0),
            immunization(
                p,
                "pneumococcal",
                ("33", "pneumococcal polysaccharide vaccine, 23 valent"),
                "2023-09-12",
                "PV9921K",
            ),
            immunization(
                p,
                "influenza",
                ("140", "Influenza, seasonal, injectable, preservative free"),
                "2024-10-15",
                "FL2417C",
            ),
            lab_report(
                p,
                &["hba1c", "creatinine", "haemoglobin", "ldl"],
                "Results within reference ranges; LDL cholesterol at target on atorvastatin.",
            ),
            imaging(
                p,
                "2025-02-03",
                "Hyperinflated lungs with flattened hemidiaphragms. No focal consolidation, effusion or mass.",
                "Hyperinflation consistent with COPD. No acute abnormality.",
                ("13645005", "Chronic obstructive lung disease"),
            ),
            note(
                p,
                "visit-note",
                ("11506-3", "Progress note"),
                "2025-02-03T11:05:00Z",
                p.doctor,
                "Respiratory clinic review",
                "Respiratory clinic review, 3 February 2025.\n\n\
                 Bruno's COPD is stable: breathless after one flight of stairs, using salbutamol about once a \
                 day, two exacerbations in the past year treated at home. Still smokes five cigarettes a day; \
                 cessation support offered and accepted.\n\n\
                 Chest X-ray: hyperinflation, no acute change. Heart rate 88/min, blood pressure 132/84 mmHg.\n\n\
                 Plan: refer for pulmonary rehabilitation; inhaler technique checked; spirometry in six \
                 months; continue atorvastatin.\n",
            ),
            // Sensitive: depression, restricted at the patient's request, and its treatment.
            labelled(
                condition(p, "psy-condition", ("370143000", "Major depressive disorder"), "Depression", "2023-04-18"),
                &["PSY", "R"],
            ),
            labelled(
                medication(
                    p,
                    "sertraline",
                    ("312938", "sertraline 100 MG Oral Tablet"),
                    "Sertraline 100 mg tablet",
                    "100 mg by mouth once daily",
                    "2023-05-02",
                    Some("psy-condition"),
                ),
                &["PSY"],
            ),
        ]
    }

    fn amara() -> Vec<Value> {
        let p = &AMARA;
        vec![
            patient(p),
            allergy(
                p,
                1,
                ("232347008", "Dander (animal) allergy"),
                "environment",
                "low",
                ("267036007", "Dyspnea"),
                "2008-03-30",
            ),
            condition(p, "condition-asthma", ("195967001", "Asthma"), "Asthma", "2003-09-08"),
            condition(
                p,
                "condition-anaemia",
                ("87522002", "Iron deficiency anemia"),
                "Iron deficiency anaemia",
                "2025-03-11",
            ),
            condition(p, "condition-migraine", ("37796009", "Migraine"), "Migraine", "2014-05-27"),
            medication(
                p,
                "fluticasone",
                ("895994", "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
                "Fluticasone 50 micrograms/dose inhaler",
                "2 puffs inhaled twice daily",
                "2019-02-11",
                Some("condition-asthma"),
            ),
            medication(
                p,
                "salbutamol",
                ("745679", "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
                "Salbutamol 100 micrograms/dose inhaler",
                "2 puffs inhaled when needed for wheeze",
                "2019-02-11",
                Some("condition-asthma"),
            ),
            lab(p, "haemoglobin", HAEMOGLOBIN, 11.1, G_PER_DL, (Some(12.0), Some(15.5))),
            lab(p, "ferritin", FERRITIN, 9.0, NG_PER_ML, (Some(15.0), Some(150.0))),
            lab(p, "creatinine", CREATININE, 0.72, MG_PER_DL, (Some(0.59), Some(1.04))),
            lab(p, "tsh", TSH, 1.8, MIU_PER_L, (Some(0.4), Some(4.0))),
            blood_type(p),
            blood_pressure(p, 112, 70),
            heart_rate(p, 68),
            body_weight(p, 61.2),
            immunization(
                p,
                "tdap",
                ("115", "tetanus toxoid, reduced diphtheria toxoid, and acellular pertussis vaccine, adsorbed"),
                "2023-05-16",
                "TD3308B",
            ),
            lab_report(
                p,
                &["haemoglobin", "ferritin", "creatinine", "tsh"],
                "Low haemoglobin and ferritin, consistent with iron deficiency. Thyroid and kidney function normal.",
            ),
            imaging(
                p,
                "2024-12-02",
                "Lungs clear. Heart and mediastinum normal. No pleural effusion.",
                "Normal chest radiograph.",
                ("281900007", "No abnormality detected"),
            ),
            note(
                p,
                "visit-note",
                ("11506-3", "Progress note"),
                "2025-03-11T09:45:00Z",
                p.doctor,
                "Asthma review and tiredness",
                "Asthma review, 11 March 2025.\n\n\
                 Amara uses fluticasone twice daily and salbutamol about twice a week; no night waking. She \
                 reports tiredness for two months and heavy periods.\n\n\
                 Haemoglobin 11.1 g/dL and ferritin 9 ng/mL: iron deficiency anaemia. TSH normal. Blood \
                 pressure 112/70 mmHg.\n\n\
                 Plan: oral iron and dietary advice; repeat full blood count in three months; gynaecology \
                 review if heavy periods persist; asthma plan unchanged.\n",
            ),
            // Sensitive: a sexual health test.
            labelled(coded_lab(p, "sti-result", CHLAMYDIA_NAAT, NEGATIVE, "2024-08-27"), &["STD"]),
        ]
    }

    fn coding(system: &str, (code, display): Code) -> Value {
        json!({ "system": system, "code": code, "display": display })
    }

    fn concept(system: &str, code: Code) -> Value {
        json!({ "coding": [coding(system, code)], "text": code.1 })
    }

    fn named_concept(system: &str, code: Code, text: &str) -> Value {
        json!({ "coding": [coding(system, code)], "text": text })
    }

    fn reference(p: &Person) -> Value {
        json!({ "reference": format!("Patient/{}", p.id), "display": format!("{} {}", p.given, p.family) })
    }

    fn rid(p: &Person, slug: &str) -> String {
        format!("{}-{slug}", p.id)
    }

    /// A decimal as FHIR JSON, whole numbers without a fraction.
    fn number(value: f64) -> Value {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            // Exact: the value is whole and well within i64.
            json!(value as i64)
        } else {
            json!(value)
        }
    }

    fn quantity(value: f64, (unit, code): Unit) -> Value {
        json!({ "value": number(value), "unit": unit, "system": UCUM, "code": code })
    }

    fn at(date: &str, time: &str) -> String {
        format!("{date}T{time}Z")
    }

    /// Labels `resource` sensitive: `meta.security` codings for the HL7 codes in `labels`.
    fn labelled(mut resource: Value, labels: &[&str]) -> Value {
        let security: Vec<Value> = labels
            .iter()
            .map(|code| {
                let label: SensitivityLabel =
                    code.parse().expect("the synthetic records are labelled with codes custodia-core knows");
                coding(label.system(), (label.code(), label.display()))
            })
            .collect();
        resource["meta"] = json!({ "security": security });
        resource
    }

    fn patient(p: &Person) -> Value {
        let (line, city, postal_code) = p.address;
        json!({
            "resourceType": "Patient",
            "id": p.id,
            "identifier": [{
                "use": "usual",
                "type": concept(IDENTIFIER_TYPE, ("MR", "Medical record number")),
                "system": MRN_SYSTEM,
                "value": p.mrn,
            }],
            "active": true,
            "name": [{ "use": "official", "family": p.family, "given": [p.given] }],
            "telecom": [{ "system": "phone", "value": p.phone, "use": "mobile" }],
            "gender": p.gender,
            "birthDate": p.birth_date,
            "address": [{ "use": "home", "line": [line], "city": city, "postalCode": postal_code, "country": "GB" }],
            "communication": [{
                "language": concept("urn:ietf:bcp:47", ("en-GB", "English (United Kingdom)")),
                "preferred": true,
            }],
        })
    }

    fn allergy(
        p: &Person,
        n: u32,
        code: Code,
        category: &str,
        criticality: &str,
        manifestation: Code,
        recorded: &str,
    ) -> Value {
        let severity = if manifestation.1 == "Anaphylaxis" { "severe" } else { "moderate" };
        json!({
            "resourceType": "AllergyIntolerance",
            "id": rid(p, &format!("allergy-{n}")),
            "clinicalStatus": concept(ALLERGY_CLINICAL, ("active", "Active")),
            "verificationStatus": concept(ALLERGY_VERIFICATION, ("confirmed", "Confirmed")),
            "type": "allergy",
            "category": [category],
            "criticality": criticality,
            "code": concept(SNOMED, code),
            "patient": reference(p),
            "recordedDate": recorded,
            "reaction": [{ "manifestation": [concept(SNOMED, manifestation)], "severity": severity }],
        })
    }

    fn condition(p: &Person, slug: &str, code: Code, text: &str, onset: &str) -> Value {
        json!({
            "resourceType": "Condition",
            "id": rid(p, slug),
            "clinicalStatus": concept(CONDITION_CLINICAL, ("active", "Active")),
            "verificationStatus": concept(CONDITION_VERIFICATION, ("confirmed", "Confirmed")),
            "category": [concept(CONDITION_CATEGORY, ("problem-list-item", "Problem List Item"))],
            "code": named_concept(SNOMED, code, text),
            "subject": reference(p),
            "onsetDateTime": onset,
            "recordedDate": onset,
        })
    }

    fn medication(
        p: &Person,
        slug: &str,
        code: Code,
        text: &str,
        dosage: &str,
        authored: &str,
        reason: Option<&str>,
    ) -> Value {
        let mut request = json!({
            "resourceType": "MedicationRequest",
            "id": rid(p, &format!("med-{slug}")),
            "status": "active",
            "intent": "order",
            "category": [concept(MEDICATION_REQUEST_CATEGORY, ("community", "Community"))],
            "medicationCodeableConcept": named_concept(RXNORM, code, text),
            "subject": reference(p),
            "authoredOn": authored,
            "requester": { "display": p.doctor },
            "dosageInstruction": [{ "sequence": 1, "text": dosage }],
        });
        if let Some(reason) = reason {
            request["reasonReference"] = json!([{ "reference": format!("Condition/{}", rid(p, reason)) }]);
        }
        request
    }

    fn observation(p: &Person, id: String, category: Code, code: Test, effective: String) -> Value {
        let (loinc, display, text) = code;
        json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": [concept(OBSERVATION_CATEGORY, category)],
            "code": named_concept(LOINC, (loinc, display), text),
            "subject": reference(p),
            "effectiveDateTime": effective,
        })
    }

    /// A laboratory result with a quantity and its reference range, interpreted against it.
    fn lab(p: &Person, slug: &str, test: Test, value: f64, unit: Unit, range: (Option<f64>, Option<f64>)) -> Value {
        let mut observation =
            observation(p, rid(p, &format!("lab-{slug}")), ("laboratory", "Laboratory"), test, at(p.visit, "08:30:00"));
        let (low, high) = range;
        let interpretation = if low.is_some_and(|low| value < low) {
            ("L", "Low")
        } else if high.is_some_and(|high| value > high) {
            ("H", "High")
        } else {
            ("N", "Normal")
        };
        let mut reference_range = serde_json::Map::new();
        if let Some(low) = low {
            reference_range.insert("low".into(), quantity(low, unit));
        }
        if let Some(high) = high {
            reference_range.insert("high".into(), quantity(high, unit));
        }
        observation["issued"] = json!(at(p.visit, "14:05:00"));
        observation["performer"] = json!([{ "display": LABORATORY }]);
        observation["valueQuantity"] = quantity(value, unit);
        observation["interpretation"] = json!([concept(INTERPRETATION, interpretation)]);
        observation["referenceRange"] = json!([reference_range]);
        observation
    }

    /// A laboratory result whose value is a code (a SNOMED CT finding).
    fn coded_lab(p: &Person, slug: &str, test: Test, value: Code, date: &str) -> Value {
        let mut observation = observation(p, rid(p, slug), ("laboratory", "Laboratory"), test, at(date, "09:10:00"));
        observation["issued"] = json!(at(date, "16:30:00"));
        observation["performer"] = json!([{ "display": LABORATORY }]);
        observation["valueCodeableConcept"] = concept(SNOMED, value);
        observation
    }

    fn blood_type(p: &Person) -> Value {
        let mut observation = coded_lab(
            p,
            "blood-type",
            ("882-1", "ABO and Rh group [Type] in Blood", "Blood group"),
            p.blood_group,
            p.visit,
        );
        observation["effectiveDateTime"] = json!(at(p.visit, "08:30:00"));
        observation["issued"] = json!(at(p.visit, "14:05:00"));
        observation
    }

    fn vital(p: &Person, slug: &str, test: Test) -> Value {
        observation(p, rid(p, &format!("vital-{slug}")), ("vital-signs", "Vital Signs"), test, at(p.visit, "09:55:00"))
    }

    fn blood_pressure(p: &Person, systolic: u32, diastolic: u32) -> Value {
        let mut observation =
            vital(p, "bp", ("85354-9", "Blood pressure panel with all children optional", "Blood pressure"));
        let mm_hg = ("mmHg", "mm[Hg]");
        observation["component"] = json!([
            {
                "code": concept(LOINC, ("8480-6", "Systolic blood pressure")),
                "valueQuantity": quantity(systolic.into(), mm_hg),
            },
            {
                "code": concept(LOINC, ("8462-4", "Diastolic blood pressure")),
                "valueQuantity": quantity(diastolic.into(), mm_hg),
            },
        ]);
        observation
    }

    fn heart_rate(p: &Person, rate: u32) -> Value {
        let mut observation = vital(p, "heart-rate", ("8867-4", "Heart rate", "Heart rate"));
        observation["valueQuantity"] = quantity(rate.into(), ("beats/minute", "/min"));
        observation
    }

    fn body_weight(p: &Person, kg: f64) -> Value {
        let mut observation = vital(p, "weight", ("29463-7", "Body weight", "Weight"));
        observation["valueQuantity"] = quantity(kg, ("kg", "kg"));
        observation
    }

    fn immunization(p: &Person, slug: &str, vaccine: Code, date: &str, lot: &str) -> Value {
        json!({
            "resourceType": "Immunization",
            "id": rid(p, &format!("imm-{slug}")),
            "status": "completed",
            "vaccineCode": concept(CVX, vaccine),
            "patient": reference(p),
            "occurrenceDateTime": date,
            "primarySource": true,
            "lotNumber": lot,
            "site": concept(ACT_SITE, ("LA", "left arm")),
            "route": concept(ROUTE, ("IM", "Injection, intramuscular")),
            "doseQuantity": quantity(0.5, ("mL", "mL")),
            "performer": [{ "actor": { "display": p.doctor } }],
        })
    }

    fn lab_report(p: &Person, results: &[&str], conclusion: &str) -> Value {
        let results: Vec<Value> = results
            .iter()
            .map(|slug| json!({ "reference": format!("Observation/{}", rid(p, &format!("lab-{slug}"))) }))
            .collect();
        json!({
            "resourceType": "DiagnosticReport",
            "id": rid(p, "report-lab"),
            "status": "final",
            "category": [concept(DIAGNOSTIC_SERVICE, ("LAB", "Laboratory"))],
            "code": named_concept(LOINC, ("11502-2", "Laboratory report"), "Blood tests"),
            "subject": reference(p),
            "effectiveDateTime": at(p.visit, "08:30:00"),
            "issued": at(p.visit, "14:05:00"),
            "performer": [{ "display": LABORATORY }],
            "result": results,
            "conclusion": conclusion,
        })
    }

    fn imaging(p: &Person, date: &str, findings: &str, conclusion: &str, conclusion_code: Code) -> Value {
        json!({
            "resourceType": "DiagnosticReport",
            "id": rid(p, "imaging-cxr"),
            "status": "final",
            "category": [concept(DIAGNOSTIC_SERVICE, ("RAD", "Radiology"))],
            "code": named_concept(LOINC, ("36643-5", "XR Chest 2 Views"), "Chest X-ray"),
            "subject": reference(p),
            "effectiveDateTime": at(date, "11:30:00"),
            "issued": at(date, "15:10:00"),
            "performer": [{ "display": RADIOLOGIST }],
            "presentedForm": [{
                "contentType": "text/plain; charset=utf-8",
                "language": "en-GB",
                "data": data_encoding::BASE64.encode(format!("Chest X-ray, PA and lateral.\n\nFindings: {findings}\n\nConclusion: {conclusion}\n").as_bytes()),
                "title": "Chest X-ray report",
            }],
            "conclusion": conclusion,
            "conclusionCode": [concept(SNOMED, conclusion_code)],
        })
    }

    fn note(p: &Person, slug: &str, kind: Code, when: &str, author: &str, description: &str, text: &str) -> Value {
        json!({
            "resourceType": "DocumentReference",
            "id": rid(p, slug),
            "status": "current",
            "docStatus": "final",
            "type": concept(LOINC, kind),
            "category": [concept(DOCUMENT_CATEGORY, ("clinical-note", "Clinical Note"))],
            "subject": reference(p),
            "date": when,
            "author": [{ "display": author }],
            "description": description,
            "content": [{
                "attachment": {
                    "contentType": "text/plain; charset=utf-8",
                    "language": "en-GB",
                    "data": data_encoding::BASE64.encode(text.as_bytes()),
                    "title": description,
                    "creation": when,
                },
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir;
    use custodia_core::labels::{ACT_CODE_SYSTEM, CONFIDENTIALITY_SYSTEM, is_restricting};

    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/dataset");

    fn ids<'a>(resources: impl IntoIterator<Item = &'a Arc<Value>>) -> Vec<&'a str> {
        resources.into_iter().map(|r| id_of(r)).collect()
    }

    /// Every resource of `a` is in `b`, equal, and the other way round; panics naming the first difference.
    fn assert_same(a: &Dataset, b: &Dataset, hint: &str) {
        assert_eq!(a.resource_types(), b.resource_types(), "{hint}");
        for t in a.resource_types() {
            assert_eq!(ids(a.search(t, None)), ids(b.search(t, None)), "{t}: {hint}");
            for r in a.search(t, None) {
                assert!(b.read(t, id_of(r)) == Some(r), "{t}/{} differs: {hint}", id_of(r));
            }
        }
        assert_eq!(a.len(), b.len(), "{hint}");
    }

    /// The files in `dataset/` are `Dataset::synthetic()` as `Dataset::write` writes it, byte for byte.
    /// `CUSTODIA_BLESS=1` rewrites them.
    #[test]
    fn shipped_dataset_is_current() {
        let hint = "the shipped dataset is stale: run `CUSTODIA_BLESS=1 cargo test -p custodia-gateway --lib dataset` \
                    and commit crates/custodia-gateway/dataset/";
        let synthetic = Dataset::synthetic();
        let dir = Path::new(SHIPPED);
        if std::env::var_os("CUSTODIA_BLESS").is_some() {
            if dir.exists() {
                for file in json_files(dir).unwrap() {
                    std::fs::remove_file(file).unwrap();
                }
            }
            synthetic.write(dir).unwrap();
        }
        let shipped = Dataset::load(dir).unwrap_or_else(|e| panic!("{e}; {hint}"));
        assert_same(&synthetic, &shipped, hint);

        let fresh = tempfile::tempdir().unwrap();
        synthetic.write(fresh.path()).unwrap();
        let names = |dir: &Path| -> Vec<_> {
            json_files(dir).unwrap().iter().map(|f| f.file_name().unwrap().to_owned()).collect()
        };
        assert_eq!(names(dir), names(fresh.path()), "{hint}");
        for name in names(dir) {
            let shipped = std::fs::read(dir.join(&name)).unwrap();
            assert!(shipped == std::fs::read(fresh.path().join(&name)).unwrap(), "{name:?} differs; {hint}");
        }
    }

    #[test]
    fn synthetic_patients_have_a_full_record() {
        let data = Dataset::synthetic();
        assert_eq!(data.patient_ids(), ["p1", "p2", "p3"]);
        assert_eq!(
            data.resource_types(),
            [
                "AllergyIntolerance",
                "Condition",
                "DiagnosticReport",
                "DocumentReference",
                "Immunization",
                "MedicationRequest",
                "Observation",
                "Patient"
            ]
        );
        assert_eq!(data.read("Patient", "p1").unwrap()["name"][0]["given"][0], "Alice");
        assert_eq!(data.read("Patient", "p1").unwrap()["name"][0]["family"], "Martin");
        let mut people = std::collections::HashSet::new();
        for p in data.patient_ids() {
            let patient = data.read("Patient", p).unwrap();
            assert!(people.insert((patient["name"].to_string(), patient["birthDate"].to_string())));
            let count = |t: &str| data.search(t, Some(p)).len();
            assert!((1..=2).contains(&count("AllergyIntolerance")), "{p}");
            assert!(count("MedicationRequest") >= 2, "{p}");
            assert!(count("Condition") >= 2, "{p}");
            assert!(count("Immunization") >= 1, "{p}");
            let observations = data.search("Observation", Some(p));
            let in_category = |c: &str| observations.iter().filter(|o| fhir::matches_token(o, "category", c)).count();
            let lab = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
            let quantities = observations
                .iter()
                .filter(|o| {
                    fhir::matches_token(o, "category", lab)
                        && o["valueQuantity"]["system"] == "http://unitsofmeasure.org"
                })
                .count();
            assert!(quantities >= 3, "{p}");
            assert!(in_category("vital-signs") >= 2, "{p}");
            let blood: Vec<_> =
                observations.iter().filter(|o| fhir::matches_token(o, "code", "http://loinc.org|882-1")).collect();
            assert_eq!(blood.len(), 1, "{p}");
            assert!(fhir::matches_token(blood[0], "category", lab));
            assert_eq!(blood[0]["valueCodeableConcept"]["coding"][0]["system"], "http://snomed.info/sct");
            let bp = data.read("Observation", &format!("{p}-vital-bp")).unwrap();
            assert_eq!(bp["component"].as_array().unwrap().len(), 2);
            let reports = data.search("DiagnosticReport", Some(p));
            let service = "http://terminology.hl7.org/CodeSystem/v2-0074";
            assert_eq!(
                reports.iter().filter(|r| fhir::matches_token(r, "category", &format!("{service}|LAB"))).count(),
                1
            );
            let imaging: Vec<_> =
                reports.iter().filter(|r| fhir::matches_token(r, "category", &format!("{service}|RAD"))).collect();
            assert_eq!(imaging.len(), 1, "{p}");
            assert!(imaging[0]["conclusion"].as_str().is_some_and(|c| !c.is_empty()));
            let note = data.read("DocumentReference", &format!("{p}-visit-note")).unwrap();
            let attachment = &note["content"][0]["attachment"];
            assert!(attachment["contentType"].as_str().unwrap().starts_with("text/plain"));
            let text = data_encoding::BASE64.decode(attachment["data"].as_str().unwrap().as_bytes()).unwrap();
            assert!(String::from_utf8(text).unwrap().contains("Plan:"));
            // Every reference to another resource resolves within the dataset.
            for t in data.resource_types() {
                for r in data.search(t, Some(p)) {
                    for reference in r["result"].as_array().into_iter().chain(r["reasonReference"].as_array()).flatten()
                    {
                        let (t, id) = reference["reference"].as_str().unwrap().split_once('/').unwrap();
                        assert!(data.read(t, id).is_some(), "{} refers to missing {t}/{id}", id_of(r));
                    }
                }
            }
        }
        assert_eq!(data.len(), data.resource_types().iter().map(|t| data.search(t, None).len()).sum::<usize>());
    }

    /// The records a hospital labels sensitive carry exactly their labels, and no other record carries a
    /// label that withholds it.
    #[test]
    fn sensitive_records_carry_their_labels() {
        let data = Dataset::synthetic();
        let expected: &[(&str, &str, &[&str])] = &[
            ("DocumentReference", "p1-psy-note", &["PSY"]),
            ("Observation", "p1-hiv-result", &["HIV"]),
            ("Condition", "p1-sud-condition", &["ETH", "ETHUD"]),
            ("Condition", "p2-psy-condition", &["PSY", "R"]),
            ("MedicationRequest", "p2-med-sertraline", &["PSY"]),
            ("Observation", "p3-sti-result", &["STD"]),
        ];
        let labels = |r: &Value| -> Vec<(String, String)> {
            r["meta"]["security"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| (c["system"].as_str().unwrap().to_owned(), c["code"].as_str().unwrap().to_owned()))
                .collect()
        };
        for (t, id, codes) in expected {
            let resource = data.read(t, id).unwrap_or_else(|| panic!("{t}/{id} is missing"));
            let want: Vec<(String, String)> = codes
                .iter()
                .map(|c| {
                    let system = if *c == "R" { CONFIDENTIALITY_SYSTEM } else { ACT_CODE_SYSTEM };
                    (system.to_owned(), (*c).to_owned())
                })
                .collect();
            assert_eq!(labels(resource), want, "{t}/{id}");
        }
        assert_eq!(
            data.read("Observation", "p1-hiv-result").unwrap()["category"][0]["coding"][0]["code"],
            "laboratory"
        );
        for t in data.resource_types() {
            for r in data.search(t, None) {
                let restricted = labels(r).iter().any(|(s, c)| is_restricting(Some(s), c));
                let listed = expected.iter().any(|(et, id, _)| et == &t && *id == id_of(r));
                assert_eq!(restricted, listed, "{t}/{}", id_of(r));
            }
        }
        // Withholding a sensitive record withholds what it says: no other record refers to it.
        for t in data.resource_types() {
            for r in data.search(t, None).into_iter().filter(|r| labels(r).is_empty()) {
                let text = r.to_string();
                for (et, id, _) in expected {
                    assert!(!text.contains(&format!("{et}/{id}\"")), "{t}/{} refers to {et}/{id}", id_of(r));
                }
            }
        }
        assert!(data.patient_ids().iter().all(|p| expected.iter().any(|(_, id, _)| id.starts_with(&format!("{p}-")))));
    }

    #[test]
    fn search_and_read() {
        let data = Dataset::synthetic();
        assert_eq!(ids(data.search("AllergyIntolerance", Some("p1"))), ["p1-allergy-1", "p1-allergy-2"]);
        assert_eq!(ids(data.search("Patient", Some("p2"))), ["p2"]);
        assert_eq!(ids(data.search("Patient", None)), ["p1", "p2", "p3"]);
        assert!(data.search("Observation", Some("p4")).is_empty());
        assert!(data.search("Observation", Some("p1-lab-hba1c")).is_empty());
        assert!(data.search("Encounter", Some("p1")).is_empty());
        assert!(data.search("Encounter", None).is_empty());
        let observations = ids(data.search("Observation", Some("p1")));
        assert!(observations.contains(&"p1-lab-hba1c") && observations.contains(&"p1-hiv-result"));
        assert!(observations.iter().all(|id| id.starts_with("p1-")));
        assert!(observations.is_sorted(), "search results are in order of id");
        let all = data.search("Observation", None).len();
        assert_eq!(all, ["p1", "p2", "p3"].iter().map(|p| data.search("Observation", Some(p)).len()).sum::<usize>());
        assert_eq!(data.read("Observation", "p1-blood-type").unwrap()["code"]["coding"][0]["code"], "882-1");
        assert!(data.read("Condition", "p1-blood-type").is_none());
        assert!(data.read("Observation", "nope").is_none());
        assert!(!data.is_empty());
        assert_eq!(format!("{data:?}"), format!("Dataset {{ resources: {}, patients: 3, types: 8 }}", data.len()));
        assert!(Dataset::from_resources(vec![]).unwrap().is_empty());
    }

    #[test]
    fn patients_of_resources() {
        assert_eq!(patient_of(&json!({"resourceType": "Patient", "id": "p1"})), Some("p1"));
        assert_eq!(
            patient_of(&json!({"resourceType": "Observation", "subject": {"reference": "Patient/p2"}})),
            Some("p2")
        );
        assert_eq!(
            patient_of(&json!({"resourceType": "Immunization", "patient": {"reference": "Patient/p3"}})),
            Some("p3")
        );
        assert_eq!(
            patient_of(&json!({"resourceType": "Observation", "subject": {"reference": "Patient/p2/_history/4"}})),
            Some("p2")
        );
        // The subject wins over patient; a subject that is not a patient falls back to patient.
        assert_eq!(
            patient_of(&json!({"subject": {"reference": "Patient/a"}, "patient": {"reference": "Patient/b"}})),
            Some("a")
        );
        assert_eq!(
            patient_of(&json!({"subject": {"reference": "Group/g"}, "patient": {"reference": "Patient/b"}})),
            Some("b")
        );
        for resource in [
            json!({"resourceType": "Observation"}),
            json!({"resourceType": "Observation", "subject": {"reference": "Group/g1"}}),
            json!({"resourceType": "Observation", "subject": {"display": "Alice"}}),
            json!({"resourceType": "Observation", "subject": {"reference": "https://elsewhere.example/Patient/p1"}}),
            json!({"resourceType": "Observation", "subject": {"reference": "Patient/"}}),
            json!({"resourceType": "Observation", "subject": {"reference": "Patient/../../etc"}}),
            json!({"resourceType": "Observation", "subject": {"reference": 7}}),
            json!({"resourceType": "Patient"}),
            json!({"resourceType": "Patient", "id": "not valid"}),
            json!("Patient/p1"),
        ] {
            assert_eq!(patient_of(&resource), None, "{resource}");
        }
        // A server's absolute references to its own Patients, and not to another's.
        let at = |reference: &str| {
            let resource = json!({"resourceType": "Observation", "subject": {"reference": reference}});
            patient_at(&resource, Some("https://fhir.example/r4/")).map(str::to_owned)
        };
        assert_eq!(at("https://fhir.example/r4/Patient/p1").as_deref(), Some("p1"));
        assert_eq!(at("https://fhir.example/r4/Patient/p1/_history/2").as_deref(), Some("p1"));
        assert_eq!(at("Patient/p1").as_deref(), Some("p1"));
        assert_eq!(at("https://elsewhere.example/r4/Patient/p1"), None);
        assert_eq!(at("https://fhir.example/r4Patient/p1"), None);
    }

    fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn load_error(files: &[(&str, &str)]) -> (String, DatasetError) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            write_file(dir.path(), name, text);
        }
        let error = Dataset::load(dir.path()).unwrap_err();
        (error.to_string(), error)
    }

    #[test]
    fn load_errors_name_the_file() {
        let good = r#"{"resourceType": "Patient", "id": "p1"}"#;
        let cases: &[(&str, &str, &str)] = &[
            ("bad.json", "{\"resourceType\": ", "bad.json is not JSON"),
            ("list.json", "[1, 2]", "list.json: a resource must be a JSON object"),
            ("none.json", r#"{"id": "x"}"#, "none.json: no resourceType"),
            (
                "type.json",
                r#"{"resourceType": "", "id": "x"}"#,
                "type.json: resourceType is not a FHIR resource type name",
            ),
            ("type2.json", r#"{"resourceType": "observation", "id": "x"}"#, "type2.json: resourceType is not"),
            ("noid.json", r#"{"resourceType": "Patient"}"#, "noid.json: no id"),
            ("id.json", r#"{"resourceType": "Patient", "id": "p 1"}"#, "id.json: id is not a FHIR id"),
            (
                "long.json",
                &format!(r#"{{"resourceType": "Patient", "id": "{}"}}"#, "a".repeat(65)),
                "long.json: id is not",
            ),
            ("num.json", r#"{"resourceType": "Patient", "id": 1}"#, "num.json: id is not"),
            (
                "bundle.json",
                r#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p2"}}, {"fullUrl": "x"}]}"#,
                "bundle.json, entry 1: the entry has no resource",
            ),
            (
                "bundle2.json",
                r#"{"resourceType": "Bundle", "entry": [7]}"#,
                "bundle2.json, entry 0: the entry is not a JSON object",
            ),
            (
                "bundle3.json",
                r#"{"resourceType": "Bundle", "entry": {}}"#,
                "bundle3.json: the Bundle's entry is not an array",
            ),
            (
                "bundle4.json",
                r#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p2"}}, {"resource": {"resourceType": "Patient", "id": "p2"}}]}"#,
                "bundle4.json, entry 1: Patient/p2 appears more than once",
            ),
            ("dup.json", good, "dup.json: Patient/p1 appears more than once"),
        ];
        for (name, text, want) in cases {
            let (message, _) = load_error(&[("a.json", good), (name, text)]);
            assert!(message.contains(want), "{name}: {message:?} should contain {want:?}");
            assert!(message.contains(&format!("/{name}")), "{message:?} names the file");
        }
        let (_, error) = load_error(&[("a.json", good), ("b.json", good)]);
        assert!(
            matches!(error, DatasetError::Duplicate { ref resource_type, ref id, .. } if resource_type == "Patient" && id == "p1")
        );
        // The same id on two types is fine.
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "a.json", good);
        write_file(dir.path(), "b.json", r#"{"resourceType": "Observation", "id": "p1"}"#);
        assert_eq!(Dataset::load(dir.path()).unwrap().len(), 2);
        let missing = Dataset::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(missing, DatasetError::Io { .. }) && missing.to_string().contains("missing"), "{missing}");
    }

    #[test]
    fn from_resources_errors_name_the_position() {
        let error = Dataset::from_resources(vec![
            json!({"resourceType": "Patient", "id": "p1"}),
            json!({"resourceType": "Patient", "id": "p1"}),
        ])
        .unwrap_err();
        assert_eq!(error.to_string(), "resource 1: Patient/p1 appears more than once");
        let error = Dataset::from_resources(vec![json!(null)]).unwrap_err();
        assert_eq!(error.to_string(), "resource 0: a resource must be a JSON object");
    }

    #[test]
    fn load_caps() {
        let dir = tempfile::tempdir().unwrap();
        let big = std::fs::File::create(dir.path().join("big.json")).unwrap();
        big.set_len(MAX_FILE_BYTES + 1).unwrap();
        let error = Dataset::load(dir.path()).unwrap_err();
        assert!(matches!(error, DatasetError::TooLarge { .. }), "{error}");
        assert!(error.to_string().contains("big.json"), "{error}");

        let dir = tempfile::tempdir().unwrap();
        write_file(
            dir.path(),
            "a.json",
            r#"{"resourceType": "Bundle", "entry": [{"resource": {"resourceType": "Patient", "id": "p1"}}, {"resource": {"resourceType": "Patient", "id": "p2"}}]}"#,
        );
        write_file(dir.path(), "b.json", r#"{"resourceType": "Patient", "id": "p3"}"#);
        assert_eq!(Dataset::load_with_limit(dir.path(), 3).unwrap().len(), 3);
        let error = Dataset::load_with_limit(dir.path(), 2).unwrap_err();
        assert!(matches!(error, DatasetError::TooMany { .. }));
        assert!(error.to_string().starts_with(&format!("{}", dir.path().join("b.json").display())), "{error}");
    }

    #[test]
    fn load_reads_bundles_and_single_resources_in_name_order_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), "b.json", r#"{"resourceType": "Bundle", "type": "collection"}"#);
        write_file(
            dir.path(),
            "a.json",
            r#"{"resourceType": "Bundle", "type": "collection", "entry": [
                {"resource": {"resourceType": "Observation", "id": "o2", "subject": {"reference": "Patient/x"}}},
                {"resource": {"resourceType": "Patient", "id": "x"}}]}"#,
        );
        write_file(
            dir.path(),
            "c.json",
            r#"{"resourceType": "Observation", "id": "o1", "subject": {"reference": "Patient/x"}}"#,
        );
        write_file(dir.path(), "d.json", r#"{"resourceType": "Organization", "id": "org"}"#);
        write_file(dir.path(), "notes.txt", "not json");
        write_file(dir.path(), "e.json.bak", "not json");
        std::fs::create_dir(dir.path().join("sub.json")).unwrap();
        let data = Dataset::load(dir.path()).unwrap();
        assert_eq!(data.len(), 4);
        assert_eq!(ids(data.search("Observation", Some("x"))), ["o1", "o2"]);
        assert_eq!(data.patient_ids(), ["x"]);
        assert_eq!(data.resource_types(), ["Observation", "Organization", "Patient"]);

        // Written back: one file per patient, the rest in shared.json, and it loads to the same dataset.
        let out = tempfile::tempdir().unwrap();
        data.write(&out.path().join("new")).unwrap();
        let names: Vec<_> =
            json_files(&out.path().join("new")).unwrap().iter().map(|f| f.file_name().unwrap().to_owned()).collect();
        assert_eq!(names, ["shared.json", "x.json"]);
        let x: Value = serde_json::from_slice(&std::fs::read(out.path().join("new/x.json")).unwrap()).unwrap();
        assert_eq!(x["type"], "collection");
        assert_eq!(x["entry"][0]["resource"]["resourceType"], "Patient", "the Patient comes first");
        assert_same(&data, &Dataset::load(&out.path().join("new")).unwrap(), "round trip");
    }

    #[test]
    fn written_files_put_resource_type_and_id_first() {
        let dir = tempfile::tempdir().unwrap();
        Dataset::synthetic().write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("p1.json")).unwrap();
        assert!(
            text.starts_with("{\n  \"resourceType\": \"Bundle\",\n  \"id\": \"p1\",\n  \"entry\": ["),
            "{}",
            &text[..80]
        );
        assert!(text.contains("\"resource\": {\n        \"resourceType\": \"Patient\",\n        \"id\": \"p1\",\n"));
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn fhir_ids() {
        for id in ["p1", "A-b.9", &"x".repeat(64)] {
            assert!(is_valid_id(id), "{id}");
        }
        for id in ["", "p 1", "p/1", "p_1", "é", &"x".repeat(65)] {
            assert!(!is_valid_id(id), "{id}");
        }
    }
}
