//! `strata acl list|add|remove`: Kafka's ACLs, like kafka-acls.sh (the broker needs an authorizer).

use strata_client::acl::{AclBinding, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType, CLUSTER_NAME};

use crate::options::Options;
use crate::table;
use crate::Outcome;

#[derive(clap::Subcommand)]
pub enum Command {
    /// The ACLs the selection matches (all without one).
    List(Selection),
    /// Allow (or with --deny, deny) principals operations on one resource.
    Add(AddArgs),
    /// Remove the ACLs the selection matches, and print them.
    Remove(Selection),
}

/// One resource: a topic, group or transactional id (literal, or with --prefixed every name starting so), or
/// the cluster.
#[derive(clap::Args)]
#[group(multiple = false)]
pub struct ResourceArgs {
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    transactional_id: Option<String>,
    #[arg(long)]
    cluster: bool,
}

impl ResourceArgs {
    fn resource(&self) -> Option<(ResourceType, String)> {
        match (&self.topic, &self.group, &self.transactional_id, self.cluster) {
            (Some(t), ..) => Some((ResourceType::Topic, t.clone())),
            (_, Some(g), ..) => Some((ResourceType::Group, g.clone())),
            (_, _, Some(x), _) => Some((ResourceType::TransactionalId, x.clone())),
            (.., true) => Some((ResourceType::Cluster, CLUSTER_NAME.to_string())),
            _ => None,
        }
    }
}

#[derive(clap::Args)]
pub struct Selection {
    #[command(flatten)]
    resource: ResourceArgs,
    /// Only bindings of this pattern type (literal or prefixed); without it, both.
    #[arg(long)]
    pattern: Option<PatternType>,
    /// `User:name`.
    #[arg(long)]
    principal: Option<String>,
    #[arg(long)]
    host: Option<String>,
    #[arg(long)]
    operation: Option<Operation>,
    /// allow or deny.
    #[arg(long)]
    permission: Option<Permission>,
}

impl Selection {
    fn filter(&self) -> AclFilter {
        let (resource_type, resource_name) = self.resource.resource().unzip();
        AclFilter {
            resource_type,
            resource_name,
            pattern: self.pattern.map_or(PatternFilter::Any, PatternFilter::Exactly),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation,
            permission: self.permission,
        }
    }
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    resource: ResourceArgs,
    /// The name is a prefix: the ACL applies to every resource whose name starts with it.
    #[arg(long)]
    prefixed: bool,
    /// `User:name` (repeatable).
    #[arg(long = "principal", required = true)]
    principals: Vec<String>,
    /// read, write, create, delete, alter, describe, cluster-action, describe-configs, alter-configs,
    /// idempotent-write, all (repeatable).
    #[arg(long = "operation", required = true)]
    operations: Vec<Operation>,
    /// An IP address, or * for any.
    #[arg(long, default_value = "*")]
    host: String,
    /// Deny instead of allow (a matching deny wins over any allow).
    #[arg(long)]
    deny: bool,
}

/// The bindings `add` creates: one per principal and operation.
pub fn bindings(args: &AddArgs) -> anyhow::Result<Vec<AclBinding>> {
    let (resource_type, name) = args
        .resource
        .resource()
        .ok_or_else(|| anyhow::anyhow!("name a resource: --topic, --group, --transactional-id or --cluster"))?;
    let pattern_type = if args.prefixed { PatternType::Prefixed } else { PatternType::Literal };
    let permission = if args.deny { Permission::Deny } else { Permission::Allow };
    let mut out = Vec::new();
    for principal in &args.principals {
        for op in &args.operations {
            let b = AclBinding::from_wire(
                resource_type.code(),
                &name,
                pattern_type.code(),
                principal,
                &args.host,
                op.code(),
                permission.code(),
            )?;
            out.push(b);
        }
    }
    Ok(out)
}

fn print(opts: &Options, bindings: &[AclBinding]) {
    if opts.json() {
        print!("{}", table::json(&bindings));
        return;
    }
    let rows: Vec<Vec<String>> = bindings
        .iter()
        .map(|b| {
            vec![
                b.principal.clone(),
                b.permission.to_string(),
                b.operation.to_string(),
                b.resource_type.to_string(),
                b.resource_name.clone(),
                b.pattern_type.to_string(),
                b.host.clone(),
            ]
        })
        .collect();
    print!("{}", table::render(&["PRINCIPAL", "PERMISSION", "OPERATION", "RESOURCE", "NAME", "PATTERN", "HOST"], &rows));
}

pub async fn run(opts: &Options, command: Command) -> anyhow::Result<Outcome> {
    let mut client = opts.client().await?;
    let conn = client.any();
    match command {
        Command::List(sel) => {
            let mut found = conn.describe_acls(&sel.filter()).await?;
            found.sort();
            print(opts, &found);
        }
        Command::Add(args) => {
            let wanted = bindings(&args)?;
            let mut failed = false;
            for (binding, outcome) in conn.create_acls(&wanted).await? {
                if let Err(e) = outcome {
                    eprintln!(
                        "error: {} {} on {} {}: {e}",
                        binding.principal, binding.operation, binding.resource_type, binding.resource_name
                    );
                    failed = true;
                }
            }
            print(opts, &wanted);
            return Ok(if failed { Outcome::Failed } else { Outcome::Ok });
        }
        Command::Remove(sel) => {
            let mut removed: Vec<AclBinding> =
                conn.delete_acls(&[sel.filter()]).await?.into_iter().next().unwrap_or(Ok(Vec::new()))?;
            removed.sort();
            print(opts, &removed);
        }
    }
    Ok(Outcome::Ok)
}
