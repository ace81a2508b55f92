# configuration: what nginx -t accepts and what it refuses, naming the cause
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use WaTest;

# acl => 0: configurations only, no Redis users (test-acl)
my $t = WaTest->new(acl => 0);
my $d = $t->dir;

sub conf_ok {
    my ($name, %o) = @_;
    my ($rc, $out) = $t->nginx_test($t->nginx_conf(%o));
    is $rc, 0, $name or diag $out;
}

sub conf_fails {
    my ($name, $re, %o) = @_;
    my ($rc, $out) = $t->nginx_test($t->nginx_conf(%o));
    isnt $rc, 0, "$name: refused";
    like $out, $re, "$name: says why" or diag $out;
    return $out;
}

conf_ok 'the default test configuration';
conf_ok 'every directive', http => <<EOF, location => <<EOF;
    whatsapp_redis_database 3;
    whatsapp_stream_prefix relay;
    whatsapp_stream_maxlen 5000;
    whatsapp_dedupe 2h;
EOF
            whatsapp_signature_sha1 on;
            whatsapp_stream_prefix loc;
            whatsapp_stream_maxlen off;
            whatsapp_dedupe off;
EOF
conf_ok 'redis on a unix socket', redis => "unix:$d/redis.sock";

$t->write_file('password', "s3cret\n", 0600);
conf_ok 'redis password file',
    http => "whatsapp_redis_password_file $d/password;";

conf_fails 'missing secret file', qr{\Q$d\E/nope},
    location => "whatsapp_app_secret_file $d/nope;";

$t->write_file('empty', "  \n", 0600);
conf_fails 'empty secret file', qr{\Q$d\E/empty.*empty}i,
    location => "whatsapp_app_secret_file $d/empty;";

$t->write_file('public', "abc", 0644);
my $out = conf_fails 'world-readable secret file',
    qr{\Q$d\E/public.*world-readable|world-readable.*\Q$d\E/public}i,
    location => "whatsapp_app_secret_file $d/public;";
unlike $out, qr/abc/, 'the secret is not echoed';

conf_fails 'world-readable verify token', qr{\Q$d\E/public},
    location => "whatsapp_verify_token_file $d/public;";

conf_fails 'world-readable redis password', qr{\Q$d\E/public},
    http => "whatsapp_redis_password_file $d/public;";

# a webhook with no secret anywhere
{
    my $conf = $t->nginx_conf;
    $conf =~ s/^\s*whatsapp_app_secret_file.*\n//m;
    my ($rc, $o) = $t->nginx_test($conf);
    isnt $rc, 0, 'webhook without a secret: refused';
    like $o, qr/whatsapp_app_secret_file/, 'names the missing directive';
}

# a webhook with no redis
{
    my $conf = $t->nginx_conf;
    $conf =~ s/^\s*whatsapp_redis .*\n//m;
    my ($rc, $o) = $t->nginx_test($conf);
    isnt $rc, 0, 'webhook without redis: refused';
    like $o, qr/whatsapp_redis/, 'names the missing directive';
}

conf_fails 'bad redis address', qr/whatsapp_redis/,
    redis => '127.0.0.1:notaport';
conf_fails 'bad dedupe window', qr/whatsapp_dedupe/,
    location => 'whatsapp_dedupe forever;';
conf_fails 'bad maxlen', qr/whatsapp_stream_maxlen/,
    location => 'whatsapp_stream_maxlen -3;';
conf_fails 'bad database', qr/whatsapp_redis_database/,
    http => 'whatsapp_redis_database x;';
conf_fails 'redis not in a location', qr/not allowed|whatsapp_redis/,
    location => 'whatsapp_redis 127.0.0.1:1;';

# sentinels: a name to ask for, and a resolver for those given by name
conf_ok 'sentinels by address',
    http => "whatsapp_redis_sentinel 127.0.0.1:26379 [::1]:26380;\n"
            . 'whatsapp_redis_master wa;';
conf_fails 'sentinels without a master', qr/needs "whatsapp_redis_master"/,
    http => 'whatsapp_redis_sentinel 127.0.0.1:26379;';
# Angie's implicit resolver is /etc/resolv.conf's: a name needs no other
my $system_resolver = $t->nginx_V =~ /^Angie version/m
    && do { open my $fh, '<', '/etc/resolv.conf';
            grep { /^\s*nameserver\s/ } <$fh> };
my @by_name = (http => "whatsapp_redis_sentinel sentinel.example:26379;\n"
                       . 'whatsapp_redis_master wa;');
if ($system_resolver) {
    conf_ok "a sentinel by name, Angie's resolver of /etc/resolv.conf",
        @by_name;
} else {
    conf_fails 'a sentinel by name without a resolver',
        qr/"sentinel.example" is a name: it needs a "resolver"/, @by_name;
}
conf_ok 'a sentinel by name with a resolver',
    http => "resolver 127.0.0.1;\n"
            . "whatsapp_redis_sentinel sentinel.example:26379;\n"
            . 'whatsapp_redis_master wa;';
conf_fails 'a sentinel without a port', qr/is not host:port/,
    http => "whatsapp_redis_sentinel 127.0.0.1;\nwhatsapp_redis_master wa;";

# partitions, and a Redis Cluster
conf_ok 'partitions on a cluster', http => "whatsapp_redis_cluster on;\n"
                                         . 'whatsapp_partitions 12;';
conf_ok 'partitions per location', location => 'whatsapp_partitions 1024;';
conf_fails "partitions $_", qr/whatsapp_partitions.*from 1 to 1024/,
    location => "whatsapp_partitions $_;" for qw(0 1025 x);
conf_fails 'a cluster and a database', qr/database 0 and no sentinels/,
    http => "whatsapp_redis_cluster on;\nwhatsapp_redis_database 2;";
conf_fails 'a cluster of one partition', qr/needs whatsapp_partitions of 2/,
    http => 'whatsapp_redis_cluster on;';
conf_fails 'a cluster behind sentinels', qr/database 0 and no sentinels/,
    http => "whatsapp_redis_cluster on;\n"
            . "whatsapp_redis_sentinel 127.0.0.1:26379;\n"
            . 'whatsapp_redis_master wa;';
conf_fails 'a cluster on a unix socket', qr/needs a node's address and port/,
    redis => "unix:$d/redis.sock",
    http => "whatsapp_redis_cluster on;\nwhatsapp_partitions 3;";

# secrets can repeat, up to a limit
my @many = map { $t->write_file("s$_", "secret$_", 0600);
                 "whatsapp_app_secret_file $d/s$_;" } 1 .. 9;
conf_ok 'two secrets', location => join "\n", @many[0, 1];
conf_fails 'too many secrets', qr/whatsapp_app_secret_file/,
    location => join "\n", @many;

done_testing;
